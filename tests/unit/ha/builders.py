"""Observations for rule tests, built in one line each: defaults describe a healthy 3-node cluster."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pgkeel.dcs import Leader
from pgkeel.ha.actions import AnyAction
from pgkeel.ha.model import Decision, Memory, Observation, OldLeader, PeerProbe, PgState
from pgkeel.ha.records import (
    Address,
    ClusterState,
    FenceKind,
    LeaderHistory,
    MemberRecord,
    MemberState,
    Role,
    SwitchoverRequest,
    SyncRecord,
)
from pgkeel.ha.rules import decide
from pgkeel.ha.settings import HASettings, Mode

SYSID = "7000000000000000001"
NAMES = ("pg-0", "pg-1", "pg-2", "pg-3", "pg-4")
NOW = 1000.0


def address(name: str) -> Address:
    return Address("127.0.0.1", 5432 + NAMES.index(name))


def record(
    name: str, role: Role = Role.REPLICA, state: MemberState = MemberState.STREAMING, lsn: int = 100
) -> MemberRecord:
    a = address(name)
    return MemberRecord(
        name,
        role=role,
        state=state,
        host=a.host,
        port=a.port,
        api_url=f"http://x/{name}",
        timeline=1,
        lsn=lsn,
        system_identifier=SYSID,
    )


def primary_record(name: str = "pg-0", lsn: int = 100) -> MemberRecord:
    return record(name, Role.PRIMARY, MemberState.RUNNING, lsn)


def replica_pg(lsn: int = 100, **kw: Any) -> PgState:
    base = dict(
        has_data=True,
        running=True,
        system_identifier=SYSID,
        in_recovery=True,
        timeline=1,
        lsn=lsn,
        streaming=True,
        following=str(address("pg-0")),
    )
    base.update(kw)
    return PgState(**base)  # type: ignore[arg-type]  # test convenience: keyword overrides


def primary_pg(lsn: int = 100, **kw: Any) -> PgState:
    base = dict(
        has_data=True,
        running=True,
        system_identifier=SYSID,
        in_recovery=False,
        timeline=1,
        lsn=lsn,
        sync_standby_names=None,
    )
    base.update(kw)
    return PgState(**base)  # type: ignore[arg-type]


def stopped_pg(was_primary: bool = False, **kw: Any) -> PgState:
    base = dict(has_data=True, running=False, system_identifier=SYSID, timeline=1, lsn=100, was_primary=was_primary)
    base.update(kw)
    return PgState(**base)  # type: ignore[arg-type]


def probe(name: str, lsn: int = 100, timeline: int = 1, **kw: Any) -> PeerProbe:
    base = dict(name=name, running=True, in_recovery=True, timeline=timeline, lsn=lsn, system_identifier=SYSID)
    base.update(kw)
    return PeerProbe(**base)  # type: ignore[arg-type]


def cluster(
    leader: str | None = "pg-0",
    members: dict[str, MemberRecord] | None = None,
    *,
    initialize: str | None = SYSID,
    sync: SyncRecord | None = None,
    switchover: SwitchoverRequest | None = None,
    history: LeaderHistory | None = None,
    n: int = 3,
) -> ClusterState:
    if members is None:
        members = {name: record(name) for name in NAMES[:n]}
        if leader is not None:
            members[leader] = primary_record(leader)
    return ClusterState(
        leader=Leader(leader, 1, 3.0) if leader else None,
        members=members,
        initialize=initialize,
        sync=sync,
        sync_version=sync.version if sync else 0,
        switchover=switchover,
        history=history,
    )


def obs(
    me: str = "pg-1",
    *,
    pg: PgState | None = None,
    state: ClusterState | None = None,
    store_down: bool = False,
    memory: Memory | None = None,
    peers: dict[str, PeerProbe] | None = None,
    old_leader: OldLeader = OldLeader.NOT_ASKED,
    fence: FenceKind = FenceKind.EXTENSION,
    mode: Mode = Mode.QUORUM,
    k: int = 1,
    n: int = 3,
    now: float = NOW,
    **settings: Any,
) -> Observation:
    return Observation(
        me=me,
        members=NAMES[:n],
        now=now,
        settings=HASettings(mode=mode, sync_standbys=k, **settings),
        pg=pg if pg is not None else replica_pg(),
        memory=memory or Memory(last_renewal=now - 0.2),
        cluster=None if store_down else (state if state is not None else cluster(n=n)),
        peers=peers or {},
        old_leader=old_leader,
        fence=fence,
        address=address(me),
        api_url=f"http://x/{me}",
    )


def kinds(decision: Decision) -> list[str]:
    return [a.kind for a in decision.actions]


def first(decision: Decision, kind: type[AnyAction]) -> AnyAction:
    return next(a for a in decision.actions if isinstance(a, kind))


def with_memory(o: Observation, **changes: Any) -> Observation:
    return replace(o, memory=replace(o.memory, **changes))


__all__ = ["decide"]
