"""What the agent observes and what it may be told to do: plain immutable data.

`decide` maps an Observation to a list of Actions without any I/O. The executor performs
the actions in order and stops at the first one that fails or returns False, so a list like
[AcquireLeader, Promote] never promotes without the lease.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pgkeel.dcs.base import ClusterView

Mode = Literal["async", "quorum"]


@dataclass(frozen=True)
class HASettings:
    """Timings and replication rules, from the cluster document's spec.failover/replication."""

    ttl: float = 3.0
    loop_wait: float = 0.5
    dcs_timeout: float = 0.5
    fence_deadline: float = 1.5
    mode: Mode = "quorum"
    sync_standbys: int = 1
    max_lag_bytes: int = 1 << 20
    restart_timeout: float = 10.0
    stream_failure_timeout: float = 10.0


@dataclass(frozen=True)
class PgState:
    """The local server as the agent saw it this loop."""

    has_data: bool = False
    running: bool = False
    system_identifier: str | None = None
    in_recovery: bool | None = None
    timeline: int | None = None
    lsn: int | None = None
    following: str | None = None  # "host:port" this replica streams from (configured)
    streaming: bool = False
    sync_standby_names: str | None = None
    was_primary: bool = False  # the data directory was last a primary (control state "in production")
    slots: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PeerProbe:
    """A peer's own answer (from its API) during an election: its present position."""

    name: str
    running: bool
    in_recovery: bool
    timeline: int | None
    lsn: int | None
    system_identifier: str | None


@dataclass(frozen=True)
class Memory:
    """What the agent remembers between loops (kept by the agent, passed in, never mutated here)."""

    last_renewal: float | None = None  # monotonic time at which the last *successful* acquire/renew was sent
    pg_down_since: float | None = None  # when postgres was first seen down while this node led
    not_streaming_since: float | None = None
    rewind_needed: bool = False
    start_failures: int = 0  # consecutive failed starts as a replica (e.g. timeline mismatch after a crash)
    refused: str | None = None  # a reason this node will not join (foreign data)


@dataclass(frozen=True)
class Observation:
    me: str
    members: tuple[str, ...]  # every configured member name
    now: float
    settings: HASettings
    pg: PgState
    memory: Memory = field(default_factory=Memory)
    view: ClusterView | None = None  # None: the store could not be read (outage)
    peers: dict[str, PeerProbe] = field(default_factory=dict)  # filled only when there is no leader
    old_leader_alive: bool = False  # the last leader's postgres still answers as a primary

    @property
    def dcs_ok(self) -> bool:
        return self.view is not None


# --- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    reason: str = ""

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Bootstrap(Action):
    """Claim the initialize key, initdb, become leader and primary, create the replication role."""


@dataclass(frozen=True)
class ClaimInitialize(Action):
    """The store lost its initialize key (wiped, restored): nodes with data claim it with their system id."""


@dataclass(frozen=True)
class CloneFrom(Action):
    leader: str = ""


@dataclass(frozen=True)
class AcquireLeader(Action):
    pass


@dataclass(frozen=True)
class RenewLeader(Action):
    pass


@dataclass(frozen=True)
class ReleaseLeader(Action):
    pass


@dataclass(frozen=True)
class StartPostgres(Action):
    standby: bool = True
    leader: str | None = None  # member to stream from (standby only)


@dataclass(frozen=True)
class StopPostgres(Action):
    mode: Literal["fast", "immediate"] = "fast"
    rewind_after: bool = False


@dataclass(frozen=True)
class Promote(Action):
    pass


@dataclass(frozen=True)
class Fence(Action):
    """Stop accepting writes now: immediate stop, then restart read-only without a primary."""


@dataclass(frozen=True)
class Follow(Action):
    leader: str = ""


@dataclass(frozen=True)
class Rewind(Action):
    leader: str = ""


@dataclass(frozen=True)
class EnsureSync(Action):
    """Leader in quorum mode: DCS sync record first, then synchronous_standby_names."""

    names: tuple[str, ...] = ()
    quorum: int = 0


@dataclass(frozen=True)
class EnsureSlots(Action):
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Switchover(Action):
    target: str = ""


@dataclass(frozen=True)
class ClearSwitchover(Action):
    pass


@dataclass(frozen=True)
class Publish(Action):
    role: str = "replica"
    state: str = "running"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wait(Action):
    """Nothing to do but report why."""


@dataclass(frozen=True)
class Refuse(Action):
    """This node will not join (foreign data): keep postgres stopped and say why."""
