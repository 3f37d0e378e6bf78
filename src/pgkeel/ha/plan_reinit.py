"""An operator's re-clone of a replica (POST /reinit, `pgkeel reinit`): when it may be asked, and the plan (pure).

Why a plan and not a handler of its own: re-cloning is what the agent already does when pg_rewind
cannot help or the leader lost the WAL a replica needs (follow.reclone). An operator's request
runs that same Reclone action, so the same guarantees hold: the free space is checked against the
leader's size before anything moves, the old data directory is kept aside (one copy at most, listed
in /status and /metrics), and a second aside copy is refused rather than made.

What is refused before anything is recorded (nothing changes): the leader itself (its data is the
cluster's), a cluster with no running leader to clone from, and a node that already keeps an aside
copy (the clone would be blocked; the operator must look at that copy first).
A request is done once a clone was tried after it (Memory.reinit_done, set by remember), whatever
came of it: a failed clone is not retried behind the operator's back, a blocked one raises the alarm.
"""

from __future__ import annotations

from pgkeel.ha.actions import AnyAction, Reclone
from pgkeel.ha.facts import leader_address, leader_name, leader_running, publish
from pgkeel.ha.model import Observation
from pgkeel.ha.records import ClusterState, MemberState, Role
from pgkeel.ha.sync import sync_names

RULE = "follow.reinit-requested"


def reinit_pending(o: Observation) -> bool:
    request = o.reinit_request
    return request is not None and request.number > o.memory.reinit_done


# --- follow ---------------------------------------------------------------------------------------


def reinit_requested(o: Observation) -> bool:
    return reinit_pending(o) and leader_running(o) and leader_address(o) is not None


def reinit(o: Observation) -> list[AnyAction]:
    name, address = leader_name(o) or "", leader_address(o)
    assert address is not None
    return [
        publish(o, Role.CLONING, MemberState.STOPPED),
        Reclone(
            leader=name,
            address=address,
            sync_names=sync_names(o),
            reason=f"reinit requested by an operator: re-clone from {name}, the old data kept aside",
        ),
    ]


# --- the API's check, before a request is accepted --------------------------------------------------


class ReinitRefused(ValueError):
    """A re-clone this node will not accept now (409); nothing was recorded."""


def reinit_refusal(state: ClusterState, me: str, asides: list[str]) -> str | None:
    """Why this node will not re-clone itself now, or None. `asides`: the copies it already keeps."""
    leader = state.leader_name
    if leader == me:
        return f"{me} is the leader: its data is the cluster's; switch over first, then reinit it as a replica"
    if leader is None:
        return "no leader holds the lease: there is nothing to clone from"
    record = state.members.get(leader)
    if record is None or not record.running_primary or record.address is None:
        return f"the leader {leader} is not running as a primary: there is nothing to clone from now"
    if asides:
        return (
            f"{me} keeps an aside copy already ({', '.join(asides)}); at most one is kept: check whether it holds "
            "data that exists nowhere else, move it off this volume or remove it, then ask again"
        )
    return None
