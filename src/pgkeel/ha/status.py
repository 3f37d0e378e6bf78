"""What a node says about itself on /status: `NodeStatus`, one typed model, from which /status'
OpenAPI schema is generated (pgkeel.api.openapi) and /metrics is rendered.

Invariant: elections never read this (they ask peers' postgres directly); it is for probes,
operators, the CLI and the lab, so a field renamed for a UI cannot break failover. It says only
what was seen: a postgres that runs but has not answered yet is `starting`, never `primary`.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from pgkeel.backup.archive_watch import ArchiveStatus
from pgkeel.backup.schedule_status import BackupScheduleStatus
from pgkeel.ha.actions import Publish
from pgkeel.ha.election import self_candidate
from pgkeel.ha.facts import paused
from pgkeel.ha.model import Decision, Memory, Observation
from pgkeel.ha.records import FenceKind
from pgkeel.instance import AsideInfo, ServerStatus

ROLES = ("primary", "replica", "starting", "stopped")


def pgkeel_version() -> str:
    try:
        return importlib.metadata.version("pgkeel")
    except importlib.metadata.PackageNotFoundError:  # run from a copy of the package without its metadata
        return "unknown"


class PostgresStatus(BaseModel):
    running: bool = False
    in_recovery: bool | None = None
    timeline: int | None = None
    lsn: int | None = Field(default=None, description="primary: flushed WAL end; replica: max(received, replayed)")
    receive_lsn: int | None = Field(default=None, description="replica: WAL received and flushed (walreceiver)")
    replay_lsn: int | None = Field(default=None, description="replica: WAL replayed (what reads see)")
    replay_paused: bool | None = Field(default=None, description="replica: pg_is_wal_replay_paused()")
    replay_lag_seconds: float | None = Field(
        default=None, description="replica: age of the last replayed commit while received WAL waits; 0 caught up"
    )
    streaming: bool = False
    following: str | None = Field(default=None, description="host:port this standby streams from; null: none")
    system_identifier: str | None = None
    sync_standby_names: str | None = None
    version: str | None = Field(default=None, description="server_version, e.g. 15.8")
    pid: int | None = None
    port: int | None = None
    host: str | None = None


class ReplicationPeer(BaseModel):
    name: str
    state: str | None = None
    sync_state: str | None = None
    flush_lsn: int | None = None
    replay_lsn: int | None = None


class ActionReport(BaseModel):
    kind: str
    reason: str = ""


class FenceStatus(BaseModel):
    kind: FenceKind = FenceKind.NONE
    detail: str = ""


class AsideStatus(BaseModel):
    path: str
    bytes: int
    created: float
    reason: str


class SwitchoverStatus(BaseModel):
    """The switchover request pending in the store (`pgkeel switchover [--at]`; cancel: --cancel)."""

    source: str | None = Field(default=None, description="the leader it hands over from; null: whoever leads")
    target: str | None = Field(default=None, description="the member to hand over to; null: the best replica")
    at: float | None = Field(default=None, description="scheduled time (epoch seconds); null: at once")


class TlsStatus(BaseModel):
    enabled: bool = False
    certificate_not_after: str | None = None


class StartStatus(BaseModel):
    """Failed starts of postgres (or of the bootstrap) since it last answered."""

    failures: int = Field(default=0, description="consecutive failed starts; 0 once postgres answers")
    error: str | None = Field(default=None, description="why the last one failed: postgres' last log lines")
    retry_in_s: float | None = Field(default=None, description="seconds until the next start (backoff)")


class Counters(BaseModel):
    """Events since this agent started (the _total counters of /metrics)."""

    failovers: int = 0
    switchovers: int = 0
    start_failures: int = 0
    store_errors: int = 0


class NodeStatus(BaseModel):
    """One node's last loop, as served on /status."""

    name: str = ""
    scope: str = Field(default="", description="the cluster's name")
    version: str = Field(default_factory=pgkeel_version, description="pgkeel's version")
    mode: str | None = Field(default=None, description="replication mode: async | sync | quorum")
    paused: bool = Field(
        default=False, description="maintenance mode is in force: no automatic failover (`pgkeel pause`/`resume`)"
    )
    paused_until: float | None = Field(
        default=None, description="when maintenance mode ends by itself (epoch seconds); null: not paused or no expiry"
    )
    switchover: SwitchoverStatus | None = Field(
        default=None, description="a pending (e.g. scheduled) switchover request; null: none"
    )
    failsafe_serving_s: float | None = Field(
        default=None,
        description="the primary serves writes through a store outage on every member's promise not to lead: "
        "for this many seconds; null: not on failsafe",
    )
    failsafe_promised_s: float | None = Field(
        default=None,
        description="this node promised the last leader, which cannot reach the store, not to lead for this many "
        "seconds more; null: no promise",
    )
    role: str = Field(default="starting", description="primary | replica | starting (not answering yet) | stopped")
    state: str = Field(default="starting", description="running | streaming | recovering | starting | stopped")
    leader: str | None = None
    is_leader: bool = False
    dcs_ok: bool = False
    candidate: bool = Field(default=False, description="may stand in an election: its data cannot have diverged")
    postgres: PostgresStatus = Field(default_factory=PostgresStatus)
    lag_bytes: int | None = Field(default=None, description="replay lag: bytes behind the leader's published position")
    receive_lag_bytes: int | None = Field(default=None, description="bytes not yet received from the leader")
    replay_lag_bytes: int | None = Field(default=None, description="bytes not yet replayed (received or not)")
    replication: list[ReplicationPeer] = Field(default_factory=list)
    synchronous: bool = Field(
        default=False, description="a replica in the leader's synchronous set (the store's sync record, quorum mode)"
    )
    rule: str | None = Field(default=None, description="the HA rule that fired this loop (pgkeel rules)")
    actions: list[ActionReport] = Field(default_factory=list)
    refused: str | None = None
    alarm: str | None = Field(default=None, description="a condition an operator must resolve")
    start: StartStatus = Field(default_factory=StartStatus)
    last_error: str | None = Field(default=None, description="refused, else alarm, else the last start failure")
    fence: FenceStatus = Field(default_factory=FenceStatus)
    asides: list[AsideStatus] = Field(default_factory=list)
    tls: TlsStatus = Field(default_factory=TlsStatus)
    pending_restart: list[str] = Field(
        default_factory=list, description="parameters changed in the files that take effect at the next restart"
    )
    auto_conf_drift: list[str] = Field(
        default_factory=list,
        description="parameters set by ALTER SYSTEM on this node only (kept, but not on the other nodes)",
    )
    archive: ArchiveStatus | None = Field(default=None, description="spec.backup: the primary's WAL archive backlog")
    backups: BackupScheduleStatus | None = Field(
        default=None, description="spec.backup: scheduled base backups, as the leader's agent runs them"
    )
    counters: Counters = Field(default_factory=Counters)
    loop_duration_s: float = 0.0
    agent_pid: int | None = None


def role_and_state(o: Observation) -> tuple[str, str]:
    """What postgres runs as, as far as it said so: running but silent is `starting`."""
    pg = o.pg
    if not pg.running:
        return "stopped", "stopped"
    if pg.in_recovery is None:
        return "starting", "starting"
    if pg.in_recovery:
        return "replica", "streaming" if pg.streaming else "recovering"
    return "primary", "running"


def start_status(o: Observation, memory: Memory) -> StartStatus:
    """Without data the bootstrap (or clone) is what failed to start; with data, postgres itself."""
    failures, retry_at = memory.failed_starts, memory.retry_start_at
    if not o.pg.has_data:
        failures, retry_at = memory.bootstrap_failures, memory.retry_bootstrap_at
    retry = round(retry_at - o.now, 1) if retry_at > o.now else None
    return StartStatus(failures=failures, error=memory.start_error, retry_in_s=retry)


def _switchover(o: Observation) -> SwitchoverStatus | None:
    request = o.cluster.switchover if o.cluster else None
    if request is None:
        return None
    return SwitchoverStatus(source=request.source, target=request.target, at=request.at)


def _behind(leader_lsn: int | None, lsn: int | None) -> int | None:
    return None if leader_lsn is None or lsn is None else max(0, leader_lsn - lsn)


def node_status(
    o: Observation,
    decision: Decision,
    memory: Memory,
    *,
    scope: str,
    last_status: ServerStatus | None,
    postgres_pid: int | None,
    fence_detail: str,
    asides: list[AsideInfo],
    tls: TlsStatus,
    loop_duration: float,
    agent_pid: int,
    auto_conf_drift: list[str] | None = None,
    archive: ArchiveStatus | None = None,
    backups: BackupScheduleStatus | None = None,
) -> NodeStatus:
    pg = o.pg
    leader = o.cluster.leader_name if o.cluster else None
    role, state = role_and_state(o)
    st = last_status if pg.running and pg.in_recovery is not None else None  # this loop's SQL answer
    receive_lsn = st.receive_lsn if st is not None else None
    replay_lsn = st.replay_lsn if st is not None else None
    leader_lsn = None
    if o.cluster is not None and leader and leader != o.me and pg.running:
        record = o.cluster.members.get(leader)
        leader_lsn = record.lsn if record is not None else None
    replay_lag = _behind(leader_lsn, replay_lsn)
    peers = st.peers if st is not None else ()
    sync = o.cluster.sync if o.cluster is not None else None
    # Patroni's sync/quorum standby: named in the current leader's set, and a replica now.
    synchronous = role == "replica" and sync is not None and sync.leader == leader and o.me in sync.members
    counters = memory.counters
    return NodeStatus(
        name=o.me,
        scope=scope,
        mode=str(o.settings.mode),
        paused=paused(o),
        paused_until=o.cluster.pause.until if o.cluster and o.cluster.pause and paused(o) else None,
        switchover=_switchover(o),
        failsafe_serving_s=round(o.now - memory.failsafe_since, 3) if memory.failsafe_since is not None else None,
        failsafe_promised_s=round(o.promised_until - o.now, 3) if o.promised_until is not None else None,
        role=role,
        state=state,
        leader=leader,
        is_leader=leader == o.me,
        dcs_ok=o.dcs_ok,
        candidate=self_candidate(o),
        postgres=PostgresStatus(
            running=pg.running,
            in_recovery=pg.in_recovery,
            timeline=pg.timeline,
            lsn=pg.lsn,
            receive_lsn=receive_lsn,
            replay_lsn=replay_lsn,
            replay_paused=st.replay_paused if st is not None else None,
            replay_lag_seconds=st.replay_lag_seconds if st is not None else None,
            streaming=pg.streaming,
            following=pg.following,
            system_identifier=pg.system_identifier,
            sync_standby_names=pg.sync_standby_names,
            version=st.version if st is not None else None,
            pid=postgres_pid,
            port=o.address.port if o.address else None,
            host=o.address.host if o.address else None,
        ),
        lag_bytes=replay_lag,
        receive_lag_bytes=_behind(leader_lsn, receive_lsn),
        replay_lag_bytes=replay_lag,
        replication=[
            ReplicationPeer(
                name=p.name, state=p.state, sync_state=p.sync_state, flush_lsn=p.flush_lsn, replay_lsn=p.replay_lsn
            )
            for p in peers
        ],
        synchronous=synchronous,
        rule=decision.rule,
        actions=[ActionReport(kind=a.kind, reason=a.reason) for a in decision.actions if not isinstance(a, Publish)],
        refused=memory.refused,
        alarm=memory.alarm,
        start=start_status(o, memory),
        last_error=memory.refused or memory.alarm or memory.start_error,
        fence=FenceStatus(kind=o.fence, detail=fence_detail),
        asides=[AsideStatus(path=str(a.path), bytes=a.bytes, created=a.created, reason=a.reason) for a in asides],
        tls=tls,
        pending_restart=list(st.pending_restart) if st is not None else [],
        auto_conf_drift=list(auto_conf_drift or []),
        archive=archive if role == "primary" else None,  # the watch samples every 2 s: never a replica's stale one
        backups=backups,
        counters=Counters(
            failovers=counters.failovers,
            switchovers=counters.switchovers,
            start_failures=counters.start_failures,
            store_errors=counters.store_errors,
        ),
        loop_duration_s=loop_duration,
        agent_pid=agent_pid,
    )


# --- the cluster as `pgkeel status` prints it (from every member's /status) -----------------------


def parse_status(snap: dict[str, Any] | None) -> NodeStatus | None:
    """A member's /status body, or None when it did not answer or answered something else."""
    if snap is None:
        return None
    try:
        return NodeStatus.model_validate(snap)
    except ValidationError:
        return None


def member_summary(s: NodeStatus | None) -> dict[str, Any]:
    """What `pgkeel status` adds per member to the local view (a `patronictl list` row)."""
    if s is None:
        return {
            "host": None,
            "receive_lag_bytes": None,
            "replay_lag_bytes": None,
            "replay_lag_seconds": None,
            "replay_paused": None,
            "receive_lsn": None,
            "replay_lsn": None,
            "pending_restart": [],
            "start_failures": 0,
            "last_error": None,
            "auto_conf_drift": [],
            "version": None,
            "archive": None,
            "backups": None,
        }
    pg = s.postgres
    return {
        "host": pg.host,
        "receive_lag_bytes": s.receive_lag_bytes,
        "replay_lag_bytes": s.replay_lag_bytes,
        "replay_lag_seconds": pg.replay_lag_seconds,
        "replay_paused": pg.replay_paused,
        "receive_lsn": pg.receive_lsn,
        "replay_lsn": pg.replay_lsn,
        "pending_restart": s.pending_restart,
        "start_failures": s.start.failures,
        "last_error": s.last_error,
        "auto_conf_drift": s.auto_conf_drift,
        "version": s.version,
        "archive": s.archive.model_dump() if s.archive is not None else None,
        "backups": {**s.backups.model_dump(), "line": s.backups.line()} if s.backups is not None else None,
    }


def cluster_summary(name: str, statuses: dict[str, NodeStatus | None], leader: str | None) -> dict[str, Any]:
    """The header: the cluster's name, system identifier and mode as the leader (else any member) reports them."""
    answered = [s for s in statuses.values() if s is not None]
    first = statuses.get(leader or "") or (answered[0] if answered else None)
    return {
        "cluster": name,
        "system_identifier": first.postgres.system_identifier if first else None,
        "mode": first.mode if first else None,
        "paused": any(s.paused for s in answered),
        "paused_until": max((s.paused_until for s in answered if s.paused_until is not None), default=None),
        "switchover": next((s.switchover.model_dump() for s in answered if s.switchover is not None), None),
    }
