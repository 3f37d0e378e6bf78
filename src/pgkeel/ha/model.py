"""What the agent observes, remembers, decided, and what came of it: plain immutable data (actions: pgkeel.ha.actions).

`decide` (pgkeel.ha.rules) maps an Observation to a Decision without I/O. The executor performs
the Decision's actions in order, returns one Outcome per action performed, and stops at the
first that did not succeed, so [AcquireLeader, Promote] never promotes without the lease.
`remember` (pgkeel.ha.memory) computes the next Memory from the decision and the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pgkeel.ha.actions import AnyAction
from pgkeel.ha.records import Address, ClusterState, FenceKind, LeaderHistory
from pgkeel.ha.settings import HASettings
from pgkeel.instance import RewindOutcome


@dataclass(frozen=True)
class ReplicaFlush:
    """A standby streaming from this primary (pg_stat_replication): its name and flushed position."""

    name: str
    flush_lsn: int | None


@dataclass(frozen=True)
class PgState:
    """The local server as the agent saw it this loop."""

    has_data: bool = False
    running: bool = False
    system_identifier: str | None = None
    in_recovery: bool | None = None  # None: running but its role is unknown (starting, not answering)
    timeline: int | None = None
    lsn: int | None = None
    following: str | None = None  # "host:port" this replica streams from (configured)
    streaming: bool = False
    sync_standby_names: str | None = None
    was_primary: bool = False  # the data directory was last a primary (control state "in production"/"shut down")
    slots: frozenset[str] = frozenset()
    lost_slots: frozenset[str] = frozenset()  # inactive slots whose WAL is gone (wal_status 'lost')
    replication: tuple[ReplicaFlush, ...] = ()
    wal_source_lost: bool = False  # a replica whose leader no longer has the WAL it needs
    unfinished_bootstrap: bool = False  # the data is what this node's own bootstrap left before it was recorded
    restored: bool = False  # the data was restored from a backup to found a new cluster, not yet recorded


class OldLeader(StrEnum):
    """What the last leader's postgres answered when asked during an election."""

    NOT_ASKED = "not-asked"
    PRIMARY = "primary"  # it still runs as a primary
    NOT_PRIMARY = "not-primary"  # refused the connection (no postmaster) or answered as a standby
    UNKNOWN = "unknown"  # no answer in time, or an error: cannot tell


@dataclass(frozen=True)
class PeerProbe:
    """A peer during an election, asked now: its postgres' present position, and whether it reaches the store."""

    name: str
    running: bool
    in_recovery: bool
    timeline: int | None
    lsn: int | None
    system_identifier: str | None
    dcs_ok: bool = True  # it reaches the store, so it could lead
    detached: bool = True  # it receives no WAL, so its position is final
    candidate: bool = True  # its data cannot have diverged (see election.self_candidate)


@dataclass(frozen=True)
class SyncSwitch:
    """A change of the synchronous set made in postgres first; the store follows once it is proven."""

    members: tuple[str, ...]
    quorum: int
    switch_lsn: int


@dataclass(frozen=True)
class Counters:
    """Events since the agent started (Prometheus counters: a restart starts them at 0 again)."""

    failovers: int = 0  # this node took the lease and promoted in an election (or a forced failover)
    switchovers: int = 0  # this node, the primary, handed the lease over on request
    start_failures: int = 0  # starts of postgres that failed
    store_errors: int = 0  # loops in which the coordination store could not be read


@dataclass(frozen=True)
class RestartRequest:
    """An operator asked this agent (POST /restart) to restart its postgres, so changed parameters take effect."""

    number: int  # grows with every request the agent accepted; done once Memory.restart_done reaches it
    in_place: bool = False  # a lease holder may restart without handing over (one node, or a lowered floor)


@dataclass(frozen=True)
class ReinitRequest:
    """An operator asked this agent (POST /reinit) to re-clone its data from the leader (pgkeel.ha.plan_reinit)."""

    number: int  # grows with every request the agent accepted; done once Memory.reinit_done reaches it


@dataclass(frozen=True)
class Memory:
    """What the agent remembers between loops; only `remember` produces a new one."""

    last_renewal: float | None = None  # monotonic time the last *successful* acquire/renew was sent
    acting_primary: bool = False  # postgres was last seen running as a primary (an unknown role counts as one)
    pg_down_since: float | None = None  # when postgres was first seen down while this node led
    not_answering_since: float | None = None  # when postgres was first seen running but not answering
    not_streaming_since: float | None = None
    rewind_needed: bool = False  # was a primary (or may have diverged): rewind before following
    reclone_needed: bool = False  # diverged beyond pg_rewind, or the leader lost the WAL it needs
    rewind_failures: int = 0
    retry_rewind_at: float = 0.0
    start_failures: int = 0  # consecutive failed starts as a replica
    failed_starts: int = 0  # consecutive failed starts of any kind: the start backoff grows with it
    retry_start_at: float = 0.0  # no start before this (monotonic)
    start_error: str | None = None  # why the last start or bootstrap failed (postgres' last lines), until one works
    bootstrap_failures: int = 0
    retry_bootstrap_at: float = 0.0
    claim_seen_since: float | None = None  # another node's bootstrap claim, first seen (to detect a dead one)
    leaderless_since: float | None = None  # the store was first read with nobody holding the lease
    switchover_aborted: bool = False  # a switchover stopped postgres and then did not hand over
    sync_switch: SyncSwitch | None = None
    history_written: LeaderHistory | None = None
    refused: str | None = None  # a reason this node will not join (foreign data)
    alarm: str | None = None  # a condition an operator must resolve (e.g. an aside copy blocks a re-clone)
    restart_done: int = 0  # the last RestartRequest.number carried out: a postmaster started after it
    reinit_done: int = 0  # the last ReinitRequest.number tried: a clone ran (or was refused) after it
    failsafe_since: float | None = None  # serving through a store outage on the members' promises, since
    counters: Counters = field(default_factory=Counters)  # since the agent started, for /metrics


@dataclass(frozen=True)
class Observation:
    me: str
    members: tuple[str, ...]  # every configured member name
    now: float  # monotonic
    settings: HASettings
    pg: PgState
    memory: Memory = field(default_factory=Memory)
    cluster: ClusterState | None = None  # None: the store could not be read (outage)
    peers: dict[str, PeerProbe] = field(default_factory=dict)  # filled only during elections
    old_leader: OldLeader = OldLeader.NOT_ASKED
    fence: FenceKind = FenceKind.NONE  # what fences this node's postgres independently of its loop
    address: Address | None = None  # where this node's postgres listens (published)
    api_url: str | None = None
    store_read_at: float | None = None  # monotonic time just before the store was read (None: unknown)
    wall_now: float = 0.0  # wall clock (epoch seconds): only for operator-given times such as a pause's expiry
    restart_request: RestartRequest | None = None  # the operator's last POST /restart to this agent
    reinit_request: ReinitRequest | None = None  # the operator's last POST /reinit to this agent
    promised_until: float | None = None  # this node promised the last leader not to lead until then (failsafe)

    @property
    def dcs_ok(self) -> bool:
        return self.cluster is not None

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m != self.me)


# --- decisions and outcomes --------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    rule: str  # the name of the rule that fired
    actions: tuple[AnyAction, ...]

    @property
    def reason(self) -> str:
        reasons = [a.reason for a in self.actions if a.reason]
        return reasons[-1] if reasons else ""


@dataclass(frozen=True)
class Outcome:
    """What one performed action came to. `ok` False stops the rest of the plan."""

    ok: bool = True
    error: str | None = None


@dataclass(frozen=True)
class Done(Outcome):
    pass


@dataclass(frozen=True)
class Failed(Outcome):
    ok: bool = False


@dataclass(frozen=True)
class LeaseHeld(Outcome):
    sent_at: float = 0.0


@dataclass(frozen=True)
class Started(Outcome):
    ready: bool = True


@dataclass(frozen=True)
class Rewound(Outcome):
    result: RewindOutcome = RewindOutcome.REWOUND


@dataclass(frozen=True)
class SyncNamesSet(Outcome):
    lsn: int | None = None  # WAL position once the new names were in effect (primary only)


@dataclass(frozen=True)
class Blocked(Outcome):
    """The action cannot proceed until an operator acts (e.g. an aside copy already exists)."""

    ok: bool = False


Result = tuple[AnyAction, Outcome]
