"""The HA timings and replication rules: built and validated once, from the cluster document.

One source: the document's `spec.failover` / `spec.replication` become an `HASettings`, which the
agent's config carries as it is (JSON) and every rule reads. A typo cannot silently mean another
mode: `mode` is an enum and unknown fields are refused.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pgkeel.document import PostgresCluster


class Mode(StrEnum):
    ASYNC = "async"
    QUORUM = "quorum"


class HASettings(BaseModel):
    """Timings (seconds) and replication rules every node of a cluster shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float = Field(default=3.0, gt=0)
    loop_wait: float = Field(default=0.5, gt=0)
    dcs_timeout: float = Field(default=0.5, gt=0)
    mode: Mode = Mode.QUORUM
    sync_standbys: int = Field(default=1, ge=0)
    # The document's replication.syncStandbys when it set one (None: the default n): what a scaling keeps.
    explicit_sync_standbys: int | None = Field(default=None, ge=1)
    max_lag_bytes: int = Field(default=1 << 20, ge=0)
    restart_timeout: float = Field(default=10.0, gt=0)
    stream_failure_timeout: float = Field(default=10.0, gt=0)
    # A primary whose postgres runs but answers no query for this long hands the lease over.
    not_answering_timeout: float = Field(default=30.0, gt=0)
    member_ttl: float = Field(default=10.0, gt=0)
    switchover_ttl: float = Field(default=60.0, gt=0)
    # Through a store outage the primary keeps serving while every other member promises not to lead.
    failsafe: bool = True
    # Member tags (spec.members): never promoted automatically; never in the synchronous set; tie-breaking.
    no_failover: frozenset[str] = frozenset()
    no_sync: frozenset[str] = frozenset()
    failover_priority: dict[str, int] = Field(default_factory=dict)  # absent: 1; higher wins a tie
    # spec.bootstrap.fromBackup: the cluster is founded on restored data, never by initdb.
    bootstrap_from_backup: bool = False

    def priority(self, name: str) -> int:
        return self.failover_priority.get(name, 1)

    @property
    def sync_excluded(self) -> frozenset[str]:
        """Members never in the synchronous set: noSync, and noFailover too — an acknowledgement from a member
        that can never be promoted protects no commit across a failover, and counting it would let a
        candidate behind it prove nothing."""
        return self.no_sync | self.no_failover

    @property
    def attached_peer_wait(self) -> float:
        """Async elections: how long a candidate waits for a reachable peer still receiving WAL to detach.

        A live peer detaches in its next loop (one loop and one probe round); its final position may be
        ahead, and promoting past it would lose what only it received. Bounded, so a stuck peer only
        delays a failover."""
        return 2 * self.loop_wait + 2 * self.dcs_timeout

    @property
    def election_freshness(self) -> float:
        """How old an election's facts may be when its AcquireLeader is sent (simulator seed 8906).

        The store read at t_r found no leader; anyone who took the lease after t_r holds it until at
        least t_r + ttl. Sending the acquisition before t_r + ttl - dcs_timeout (the request may be
        applied that much later) therefore either fails or proves nobody led in between — an agent
        frozen between observing and acting cannot promote on a stale picture of the peers. One more
        dcs_timeout is kept as margin for clock-rate differences.
        """
        return self.ttl - 2 * self.dcs_timeout

    @property
    def fence_deadline(self) -> float:
        """How long after the start of its last successful renewal a leader may still commit.

        A renewal sent at t0 keeps the lease alive until at least t0 + ttl everywhere; the fence
        (inside postgres, or the watchdog) refuses commits from t0 + fence_deadline. The margin
        covers one loop and two store calls, so a loop that notices late still fences in time.
        """
        return self.ttl - self.loop_wait - 2 * self.dcs_timeout

    @model_validator(mode="after")
    def _fence_before_expiry(self) -> HASettings:
        if self.fence_deadline <= self.loop_wait:
            raise ValueError(
                f"ttl {self.ttl:g}s leaves no fence margin: need ttl > 2 × loop_wait + 2 × dcs_timeout "
                f"= {2 * self.loop_wait + 2 * self.dcs_timeout:g}s"
            )
        return self

    @classmethod
    def from_document(cls, cluster: PostgresCluster, dcs_url: str = "") -> HASettings:
        """dcs_url: the store the agent runs on, whose defaults fill timings the document leaves out."""
        spec = cluster.spec
        failover = spec.failover.for_store(dcs_url)
        return cls(
            ttl=failover.ttl_seconds,
            loop_wait=failover.loop_wait_seconds,
            dcs_timeout=failover.dcs_timeout_seconds,
            mode=Mode(spec.replication.mode),
            sync_standbys=spec.sync_standbys,
            explicit_sync_standbys=spec.replication.sync_standbys,
            max_lag_bytes=spec.replication.max_lag_bytes,
            restart_timeout=failover.postgres_restart_timeout_seconds,
            member_ttl=max(10.0, 3 * failover.ttl_seconds),
            failsafe=failover.failsafe,
            no_failover=frozenset(m.name for m in spec.members if m.no_failover or m.failover_priority == 0),
            no_sync=frozenset(m.name for m in spec.members if m.no_sync),
            failover_priority={m.name: m.failover_priority for m in spec.members if m.failover_priority != 1},
            bootstrap_from_backup=spec.bootstrap.from_backup is not None,
        )
