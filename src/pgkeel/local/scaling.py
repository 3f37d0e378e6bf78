"""Scaling a running local cluster (`pgkeel apply` with another spec.instances): 3 → 5 → 3.

Growing: the new members' directories, ports and agent configs are laid out, the store records the
new membership and k (POST /membership; every running agent takes it from its next loop: the
leader's sync set and slots, the replicas' slots, candidates, failsafe rounds), then the new agents
start and clone like any replica. The sync rule moves from `ANY k (old)` to `ANY k' (new)` by the
sync record's own safe transitions (pgkeel.ha.sync: postgres first when the proof gets weaker, the
store first when it gets stronger).

Shrinking: a leader that is to go hands over first (a switchover to a member that stays); then the
store records the smaller membership; once the sync record no longer names a leaving member (no
commit depends on it any more) their agents stop, which stops their postgres; the leader and the
replicas drop the leaving members' slots as stale. Their data stays where it was unless `purge`
(it is a replica's copy of what the others hold).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgkeel.document import PostgresCluster
from pgkeel.instance import slot_name_for
from pgkeel.instance.files import atomic_write
from pgkeel.local.cluster import LocalCluster

Say = Callable[[str], None]


@dataclass(frozen=True)
class Scaling:
    """What a scaling changes: members added and removed, and k of `ANY k (...)` before and after."""

    before: list[str]
    after: list[str]
    k_before: int
    k_after: int

    @property
    def added(self) -> list[str]:
        return [m for m in self.after if m not in self.before]

    @property
    def removed(self) -> list[str]:
        return [m for m in self.before if m not in self.after]


@dataclass
class Scaled:
    """What a scaling did, with its figures."""

    scaling: Scaling
    seconds: float = 0.0
    switched_over: str | None = None  # the new leader when the old one was removed
    purged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # removed members' data directories left in place


def plan_scaling(current: PostgresCluster, new: PostgresCluster) -> Scaling | None:
    """The scaling `new` asks of `current`, or None when the members stay the same."""
    if current.member_names() == new.member_names():
        return None
    return Scaling(current.member_names(), new.member_names(), current.spec.sync_standbys, new.spec.sync_standbys)


def carry_out(local: LocalCluster, document: Path, scaling: Scaling, say: Say, timeout: float = 180.0,
              purge: bool = False) -> Scaled:
    """Grow or shrink the running cluster to the document's members; RuntimeError/TimeoutError naming what failed."""
    began = time.monotonic()
    status = local.wait_healthy(timeout=min(timeout, 30.0))  # a scaling starts from a healthy cluster only
    done = Scaled(scaling)
    if scaling.removed:
        _shrink(local, document, scaling, status, say, timeout, done, purge)
    else:
        _grow(local, document, scaling, say, timeout)
    done.seconds = time.monotonic() - began
    return done


def _record(local: LocalCluster, scaling: Scaling) -> None:
    local.post_to_any("/membership", {"members": scaling.after, "syncStandbys": scaling.k_after})


def _grow(local: LocalCluster, document: Path, scaling: Scaling, say: Say, timeout: float) -> None:
    local.prepare(document, apply=True, scaling=True)  # directories, ports, agent configs of the new members
    _record(local, scaling)
    say(f"membership recorded: {', '.join(scaling.after)} (ANY {scaling.k_after}); starting "
        f"{', '.join(scaling.added)}")
    for name in scaling.added:
        if local.agent_pid(name) is None:
            local.start_agent(name)
    local.wait_healthy(timeout, progress=say)


def _shrink(local: LocalCluster, document: Path, scaling: Scaling, status: dict[str, object], say: Say,
            timeout: float, done: Scaled, purge: bool) -> None:
    leader = status.get("leader")
    if leader in scaling.removed:
        target = _best_staying(status, scaling)
        say(f"{leader} leaves: switching over to {target} first")
        request = local.request_switchover(target)
        local.wait_for_leader(request, timeout)
        done.switched_over = target
    _record(local, scaling)
    say(f"membership recorded: {', '.join(scaling.after)} (ANY {scaling.k_after}); waiting for the synchronous "
        "set to leave out " + ", ".join(scaling.removed))
    _wait(lambda: _sync_without(local, scaling), timeout, "the synchronous set to leave out the removed members")
    for name in scaling.removed:
        say(f"stopping {name}")
        _stop_member(local, name)
    local.prepare(document, apply=True, scaling=True)  # the document names the members that stay
    _forget_ports(local, scaling.removed)
    _wait(lambda: not _slots_of(local, scaling.removed), timeout, "the removed members' slots to be dropped")
    for name in scaling.removed:
        node = local.layout.node(name)
        if purge:
            shutil.rmtree(node, ignore_errors=True)
            done.purged.append(name)
        elif node.exists():
            done.kept.append(str(node))
    local.wait_healthy(timeout, progress=say)


def _best_staying(status: dict[str, object], scaling: Scaling) -> str:
    members = status.get("members")
    rows = [m for m in members if isinstance(m, dict)] if isinstance(members, list) else []
    staying = [m for m in rows if m.get("name") in scaling.after and m.get("state") == "streaming"]
    if not staying:
        raise RuntimeError("no member that stays streams: the leader cannot hand over; nothing changed")
    best = max(staying, key=lambda m: (int(m.get("lsn") or 0), -scaling.after.index(str(m["name"]))))
    return str(best["name"])


def _sync_without(local: LocalCluster, scaling: Scaling) -> bool:
    """Neither the leader's synchronous_standby_names nor the store's sync record (each member's /status
    `synchronous`) names a leaving member: no acknowledged commit needs one of them any more."""
    leader = local.status().get("leader")
    if not isinstance(leader, str):
        return False
    snap = local.fetch(leader) or {}
    postgres = snap.get("postgres") or {}
    names = str(postgres.get("sync_standby_names") or "") if isinstance(postgres, dict) else ""
    if any(f'"{m}"' in names for m in scaling.removed):
        return False
    return not any((local.fetch(m) or {}).get("synchronous") for m in scaling.removed)


def _slots_of(local: LocalCluster, removed: list[str]) -> list[str]:
    """Slots for removed members still on any member that stays."""
    wanted = {slot_name_for(m) for m in removed}
    left = []
    for name in local.cluster().member_names():
        with contextlib.suppress(psycopg.Error), psycopg.connect(local.node_dsn(name), autocommit=True) as conn:
            slots = {row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall()}
            left += [f"{name}:{slot}" for slot in sorted(slots & wanted)]
    return left


def _stop_member(local: LocalCluster, name: str, timeout: float = 60.0) -> None:
    """SIGTERM the member's agent (it stops its postgres and leaves the store), by PID; wait for both."""
    pid = local.agent_pid(name)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while (local.agent_pid(name) or local.postgres_pid(name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if local.agent_pid(name) or local.postgres_pid(name):
        raise TimeoutError(f"{name} did not stop within {timeout:g}s; see {local.layout.node(name)}/agent.log")


def _forget_ports(local: LocalCluster, removed: list[str]) -> None:
    """state.json keeps only the members that stay, so `up` sees the document's members laid out."""
    state = local.layout.load_state()
    for key in ("pg_ports", "api_ports"):
        for name in removed:
            state[key].pop(name, None)
    atomic_write(local.layout.state_file, json.dumps(state, indent=1) + "\n", mode=0o644)


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)
