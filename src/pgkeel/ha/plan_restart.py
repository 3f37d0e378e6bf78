"""An operator's restart request (POST /restart): when it is pending, who may carry it out, and the plans (pure).

The agent owns postgres, so a restart is one of its plans, never a stop behind its back (which
would look like a crash). A replica stops fast and starts again as a standby of the leader. A lease
holder restarts in place only when the request allows it (`in_place`: a one-node cluster, or a
lowered standby floor; see pgkeel.local.restart_order) and otherwise waits: `pgkeel restart`
switches over first, which restarts the old primary as a standby. The stop and the start of a lease
holder are two loops, so it renews its lease in between (lead.restart-in-place starts it again).
A request is done once any start of postgres happened after it (Memory.restart_done, set by remember).
"""

from __future__ import annotations

from pgkeel.ha.actions import AnyAction, RenewLeader, StartPostgres, StopPostgres
from pgkeel.ha.facts import i_lead, leader_address, leader_name, publish
from pgkeel.ha.model import Observation
from pgkeel.ha.records import ClusterState, MemberState, Role
from pgkeel.ha.sync import sync_names


def restart_pending(o: Observation) -> bool:
    request = o.restart_request
    return request is not None and request.number > o.memory.restart_done


def may_restart_in_place(o: Observation) -> bool:
    request = o.restart_request
    return request is not None and (request.in_place or len(o.members) == 1)


# --- follow ---------------------------------------------------------------------------------------


def replica_restart_requested(o: Observation) -> bool:
    return restart_pending(o) and o.pg.running and o.pg.in_recovery is True


def restart_replica(o: Observation) -> list[AnyAction]:
    name, address = leader_name(o), leader_address(o)
    return [
        StopPostgres(mode="fast", reason="restart requested: stop, then start again with the files as they are"),
        StartPostgres(standby=True, leader=address, sync_names=sync_names(o), reason=f"restart as a replica of {name}"),
        publish(o, Role.REPLICA),
    ]


# --- lead -----------------------------------------------------------------------------------------


def leader_restart_requested(o: Observation) -> bool:
    return i_lead(o) and restart_pending(o) and may_restart_in_place(o) and o.pg.running and o.pg.in_recovery is False


def stop_leader_to_restart(o: Observation) -> list[AnyAction]:
    return [
        RenewLeader(),
        StopPostgres(mode="fast", reason="restart requested in place: stop, keep the lease, start on the next loop"),
        publish(o, Role.PRIMARY, MemberState.STOPPED),
    ]


# --- the API's check, before a request is accepted --------------------------------------------------


class RestartRefused(ValueError):
    """A restart request this node will not accept now (409); nothing was recorded."""



def restart_refusal(state: ClusterState, me: str, members: list[str], in_place: bool) -> str | None:
    """Why this node will not accept a restart request now, or None: the leader of several members restarts
    in place only when asked to (a write outage), else it is switched over first."""
    if state.leader_name == me and len(members) > 1 and not in_place:
        return (
            f"{me} is the leader: restarting it in place stops writes for the whole restart; switch over first "
            "(`pgkeel restart` does), or ask for it with {\"in_place\": true}"
        )
    return None
