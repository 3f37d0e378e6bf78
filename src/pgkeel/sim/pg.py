"""A model of one node's PostgreSQL: data directory, WAL history, role, settings, slots, fence.

WAL is a list of records (timeline, id); a record's LSN is its index + 1. Record ids are unique
across the whole run and WAL only ever grows by appending on a primary or by copying a prefix of
another node's WAL, so two histories that hold the same record at the same LSN agree on every
record before it: prefix tests and fork points cost O(1) and O(log n).

Invariant: nothing here decides anything HA; these are the physical facts the executor changes
and the observer reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgkeel.ha.records import FenceKind

Rec = tuple[int, int]  # (timeline, unique id); id < 0: a marker (checkpoint, end of recovery)
WAL_KEEP = 40  # records a node keeps in pg_wal beyond what its slots hold (wal_keep_size)
SLOT_KEEP = 300  # max_slot_wal_keep_size, in records: a slot further behind is lost


def is_prefix(a: list[Rec], b: list[Rec]) -> bool:
    """a is a prefix of b (a's history is contained in b's)."""
    return len(a) <= len(b) and (not a or b[len(a) - 1] == a[-1])


def fork_point(a: list[Rec], b: list[Rec]) -> int:
    """Length of the longest common prefix of a and b."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # invariant: a[:lo] == b[:lo]
        mid = (lo + hi + 1) // 2
        if a[mid - 1] == b[mid - 1]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class Slot:
    restart: int
    lost: bool = False


@dataclass
class SimPostgres:
    """One node's server. `running` is the postmaster; `ready_at` is when it answers queries."""

    name: str
    fence_kind: FenceKind = FenceKind.EXTENSION
    has_data: bool = False
    sysid: str | None = None
    running: bool = False
    ready_at: float = 0.0  # true time from which a running server answers (crash recovery before)
    in_recovery: bool = True  # the role it runs in (meaningful while running)
    standby_signal: bool = True  # configured role for the next start
    following: str | None = None  # primary_conninfo host:port
    sync_names: str = ""
    wal: list[Rec] = field(default_factory=list)
    was_primary: bool = False  # control file: last ran as a primary
    slots: dict[str, Slot] = field(default_factory=dict)
    streaming: bool = False  # its walreceiver streams from `following`
    source_lost: bool = False  # the walreceiver was told the WAL it needs is gone
    received_from: str | None = None  # node it streams from (when streaming)
    fence_armed: bool = False
    fence_deadline: float = 0.0  # on this node's boot clock (local)
    checkpoint_until: float = 0.0  # true time a running background checkpoint ends
    slow_checkpoint: float = 0.0  # the next checkpoint lasts this long (0: quick)
    clean_stop: bool = False  # control state: last stopped by a fast shutdown
    asides: int = 0
    data_removed: int = 0  # data directories destroyed without a copy (must stay 0)
    pending: list[tuple[int, int]] = field(default_factory=list)  # (lsn, txid) waiting for sync standbys

    @property
    def lsn(self) -> int:
        return len(self.wal)

    @property
    def timeline(self) -> int | None:
        return self.wal[-1][0] if self.wal else None

    def answering(self, now: float) -> bool:
        return self.running and now >= self.ready_at

    def is_primary(self, now: float) -> bool:
        return self.answering(now) and not self.in_recovery

    def commit_allowed(self, local_now: float) -> bool:
        """pgkeel_fence: fail closed — disarmed or past the deadline refuses every write commit."""
        if self.fence_kind is not FenceKind.EXTENSION:
            return True
        return self.fence_armed and local_now < self.fence_deadline

    def retained_from(self) -> int:
        """The oldest LSN this server can still send: slots hold WAL, up to SLOT_KEEP."""
        floor = self.lsn - WAL_KEEP
        for slot in self.slots.values():
            if not slot.lost and self.lsn - slot.restart > SLOT_KEEP:
                slot.lost = True
            if not slot.lost:
                floor = min(floor, slot.restart)
        return max(0, floor)

    # --- physical changes ------------------------------------------------------------------
    def crash(self) -> None:
        """The postmaster and every backend die: waiting commits are never acknowledged."""
        if self.running:
            self.was_primary = not self.in_recovery
        self.running = False
        self.streaming = False
        self.received_from = None
        self.pending.clear()
        self.checkpoint_until = 0.0

    def start(self, now: float, recovery: float) -> None:
        self.running = True
        self.in_recovery = self.standby_signal
        self.ready_at = now + recovery
        self.streaming = False
        self.source_lost = False
        self.pending.clear()

    def promote(self, new_id: int) -> None:
        tl = (self.timeline or 0) + 1
        self.wal.append((tl, new_id))  # end-of-recovery record on the new timeline
        self.in_recovery = False
        self.standby_signal = False
        self.following = None
        self.streaming = False
        self.received_from = None
        self.was_primary = True

    def copy_from(self, source: SimPostgres) -> None:
        """basebackup: the source's data and WAL; a fresh directory (no slots)."""
        self.has_data = True
        self.sysid = source.sysid
        self.wal = list(source.wal)
        self.slots = {}
        self.was_primary = False
        self.source_lost = False
