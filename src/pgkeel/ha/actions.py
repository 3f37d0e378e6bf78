"""What the agent may be told to do: one immutable record per action, carrying the data its handler needs.

The executor (pgkeel.ha.execute) matches on `AnyAction` with `assert_never`, so adding an action
without a handler is a type error, not a runtime surprise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pgkeel.ha.records import Address, HistoryEvent, LeaderHistory, MemberRecord, SyncRecord

# Every action carries what its handler needs, so the executor never looks anything up again.


@dataclass(frozen=True, kw_only=True)
class Action:
    reason: str = ""

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class Bootstrap(Action):
    """Claim the initialize key (or reuse our own claim), initdb, lead, create the replication role."""

    placeholder: str
    reuse_claim: bool = False
    restored: bool = False  # found the cluster on data restored from a backup: start it as the primary, no initdb


@dataclass(frozen=True, kw_only=True)
class ClearRestoreMark(Action):
    """The store records the cluster founded on our restored data: the data is an ordinary member's now."""


@dataclass(frozen=True, kw_only=True)
class ClearStaleClaim(Action):
    """Another node's bootstrap claim outlived any bootstrap: remove it (CAS on its value)."""

    placeholder: str


@dataclass(frozen=True, kw_only=True)
class ClaimInitialize(Action):
    """The store lost its initialize key: a node with data claims it with its system identifier."""

    system_identifier: str


@dataclass(frozen=True, kw_only=True)
class CloneFrom(Action):
    leader: str
    address: Address
    sync_names: str


@dataclass(frozen=True, kw_only=True)
class Reclone(Action):
    """Keep the data directory aside (one copy at most) and clone the leader afresh."""

    leader: str
    address: Address
    sync_names: str


@dataclass(frozen=True, kw_only=True)
class SetAside(Action):
    """Stop postgres and keep the data directory aside (one copy at most, never deleted); the node then clones."""


@dataclass(frozen=True, kw_only=True)
class AcquireLeader(Action):
    """Take a free lease. `not_after` (monotonic): the executor does not send it later than this, because
    the facts the plan rests on (no leader, the peers' positions) would be too old to exclude a leader
    that came and went meanwhile (see HASettings.election_freshness)."""

    not_after: float | None = None


@dataclass(frozen=True, kw_only=True)
class RenewLeader(Action):
    pass


@dataclass(frozen=True, kw_only=True)
class ReleaseLeader(Action):
    pass


@dataclass(frozen=True, kw_only=True)
class ConfirmFailsafe(Action):
    """The store is unreachable: ask every other member to promise not to lead for one ttl (pgkeel.ha.failsafe).
    All promised: the fence is extended as by a renewal (LeaseHeld); any refusal or silence: nothing changes."""

    members: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class StartPostgres(Action):
    """Start postgres; returns once it is up or after a short wait, so a lease holder keeps renewing."""

    standby: bool = True
    leader: Address | None = None  # where to stream from (standby only)
    sync_names: str = ""


@dataclass(frozen=True, kw_only=True)
class StopPostgres(Action):
    """Stop postgres; a fast stop that has not finished after `escalate_after` seconds becomes immediate."""

    mode: Literal["fast", "immediate"] = "fast"
    then: Literal["rewind", "reclone", "none"] = "none"
    escalate_after: float = 60.0


@dataclass(frozen=True, kw_only=True)
class Promote(Action):
    """pg_promote, refused by the executor when the lease may have lapsed (older than `within`).

    `event` is appended to the store's history of primaries once the promotion happened."""

    sync_names: str
    within: float
    event: HistoryEvent | None = None


@dataclass(frozen=True, kw_only=True)
class Fence(Action):
    """Stop accepting writes now: immediate stop, then restart read-only without a primary."""

    sync_names: str


@dataclass(frozen=True, kw_only=True)
class Follow(Action):
    """Point the standby at the leader (a reload); no address detaches it from any WAL source."""

    leader: str
    address: Address | None
    sync_names: str


@dataclass(frozen=True, kw_only=True)
class Rewind(Action):
    leader: str
    address: Address


@dataclass(frozen=True, kw_only=True)
class WriteSyncRecord(Action):
    """Quorum mode: the synchronous set electors will rely on (CAS on the store's version)."""

    record: SyncRecord
    expected_version: int


@dataclass(frozen=True, kw_only=True)
class SetSyncNames(Action):
    """Set synchronous_standby_names in postgres (reload); reports the WAL position once in effect."""

    names: str
    standby: bool


@dataclass(frozen=True, kw_only=True)
class EnsureSlots(Action):
    names: tuple[str, ...]
    recreate: tuple[str, ...] = ()  # lost slots: dropped and created afresh so a re-cloned member can use them
    advance: tuple[tuple[str, int], ...] = ()  # replica: (member, lsn) to move the others' slots to


@dataclass(frozen=True, kw_only=True)
class DropSlots(Action):
    """Slots of members that are no longer configured: they would hold WAL for no one."""

    slots: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Action):
    """A checkpoint before a switchover, bounded: past `budget` it goes on in the background."""

    budget: float


@dataclass(frozen=True, kw_only=True)
class ConfirmReceived(Action):
    """After a clean fast stop: the target's own postgres received WAL past our shutdown checkpoint."""

    target: str
    address: Address
    within: float


@dataclass(frozen=True, kw_only=True)
class HandOver(Action):
    """Atomically hand the live lease to the switchover target and wake it."""

    target: str
    api_url: str | None


@dataclass(frozen=True, kw_only=True)
class ClearSwitchover(Action):
    pass


@dataclass(frozen=True, kw_only=True)
class Publish(Action):
    record: MemberRecord


@dataclass(frozen=True, kw_only=True)
class RecordHistory(Action):
    """The lease holder records itself as the last leader (durable; outlives member records)."""

    history: LeaderHistory


@dataclass(frozen=True, kw_only=True)
class DeleteMember(Action):
    pass


@dataclass(frozen=True, kw_only=True)
class Wait(Action):
    """Nothing to do but report why."""


@dataclass(frozen=True, kw_only=True)
class Refuse(Action):
    """This node will not join (foreign data): keep postgres stopped and say why."""


AnyAction = (
    Bootstrap
    | ClearRestoreMark
    | ClearStaleClaim
    | ClaimInitialize
    | CloneFrom
    | Reclone
    | SetAside
    | AcquireLeader
    | RenewLeader
    | ReleaseLeader
    | ConfirmFailsafe
    | StartPostgres
    | StopPostgres
    | Promote
    | Fence
    | Follow
    | Rewind
    | WriteSyncRecord
    | SetSyncNames
    | EnsureSlots
    | DropSlots
    | Checkpoint
    | ConfirmReceived
    | HandOver
    | ClearSwitchover
    | Publish
    | RecordHistory
    | DeleteMember
    | Wait
    | Refuse
)
