"""What a node says about itself on /status: `NodeStatus`, one typed model, from which /status'
OpenAPI schema is generated (pgkeel.api.openapi) and /metrics is rendered.

Invariant: elections never read this (they ask peers' postgres directly); it is for probes,
operators, the CLI and the lab, so a field renamed for a UI cannot break failover.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from pgkeel.ha.actions import Publish
from pgkeel.ha.election import self_candidate
from pgkeel.ha.model import Decision, Memory, Observation
from pgkeel.ha.records import FenceKind
from pgkeel.instance import AsideInfo, ServerStatus


class PostgresStatus(BaseModel):
    running: bool = False
    in_recovery: bool | None = None
    timeline: int | None = None
    lsn: int | None = None
    streaming: bool = False
    following: str | None = Field(default=None, description="host:port this standby streams from; null: none")
    system_identifier: str | None = None
    sync_standby_names: str | None = None
    pid: int | None = None
    port: int | None = None
    host: str | None = None


class ReplicationPeer(BaseModel):
    name: str
    state: str | None = None
    sync_state: str | None = None
    flush_lsn: int | None = None


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


class TlsStatus(BaseModel):
    enabled: bool = False
    certificate_not_after: str | None = None


class NodeStatus(BaseModel):
    """One node's last loop, as served on /status."""

    name: str = ""
    scope: str = ""
    role: str = Field(default="stopped", description="primary | replica | stopped (what postgres runs as)")
    leader: str | None = None
    is_leader: bool = False
    dcs_ok: bool = False
    candidate: bool = Field(default=False, description="may stand in an election: its data cannot have diverged")
    postgres: PostgresStatus = Field(default_factory=PostgresStatus)
    lag_bytes: int | None = None
    replication: list[ReplicationPeer] = Field(default_factory=list)
    rule: str | None = Field(default=None, description="the HA rule that fired this loop (pgkeel rules)")
    actions: list[ActionReport] = Field(default_factory=list)
    refused: str | None = None
    alarm: str | None = Field(default=None, description="a condition an operator must resolve")
    fence: FenceStatus = Field(default_factory=FenceStatus)
    asides: list[AsideStatus] = Field(default_factory=list)
    tls: TlsStatus = Field(default_factory=TlsStatus)
    pending_restart: list[str] = Field(default_factory=list)
    loop_duration_s: float = 0.0
    agent_pid: int | None = None


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
    pending_restart: list[str],
    loop_duration: float,
    agent_pid: int,
) -> NodeStatus:
    pg = o.pg
    leader = o.cluster.leader_name if o.cluster else None
    role = "stopped"
    if pg.running:
        role = "replica" if pg.in_recovery else "primary"
    lag = None
    if o.cluster is not None and leader and leader != o.me and pg.lsn is not None:
        record = o.cluster.members.get(leader)
        if record is not None and record.lsn is not None:
            lag = max(0, record.lsn - pg.lsn)
    peers = last_status.peers if last_status is not None else ()
    return NodeStatus(
        name=o.me,
        scope=scope,
        role=role,
        leader=leader,
        is_leader=leader == o.me,
        dcs_ok=o.dcs_ok,
        candidate=self_candidate(o),
        postgres=PostgresStatus(
            running=pg.running,
            in_recovery=pg.in_recovery,
            timeline=pg.timeline,
            lsn=pg.lsn,
            streaming=pg.streaming,
            following=pg.following,
            system_identifier=pg.system_identifier,
            sync_standby_names=pg.sync_standby_names,
            pid=postgres_pid,
            port=o.address.port if o.address else None,
            host=o.address.host if o.address else None,
        ),
        lag_bytes=lag,
        replication=[
            ReplicationPeer(name=p.name, state=p.state, sync_state=p.sync_state, flush_lsn=p.flush_lsn) for p in peers
        ],
        rule=decision.rule,
        actions=[ActionReport(kind=a.kind, reason=a.reason) for a in decision.actions if not isinstance(a, Publish)],
        refused=memory.refused,
        alarm=memory.alarm,
        fence=FenceStatus(kind=o.fence, detail=fence_detail),
        asides=[AsideStatus(path=str(a.path), bytes=a.bytes, created=a.created, reason=a.reason) for a in asides],
        tls=tls,
        pending_restart=pending_restart,
        loop_duration_s=loop_duration,
        agent_pid=agent_pid,
    )
