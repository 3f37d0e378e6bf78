"""A model of the coordination store, with the contract of pgkeel.dcs.base.DCS, on its own clock.

Invariants (the DCS contract): the lease is acquired only when no live lease exists and every
acquisition (or take-over) raises the term; only the live holder renews, releases, hands over or
writes the history record; member records and switchover requests expire by their TTL; the
initialize key and the sync record change only by compare-and-swap. Time is the store's own
clock (the simulator's true time); reachability and slowness are decided by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgkeel.dcs import Leader
from pgkeel.ha.records import ClusterState, LeaderHistory, MemberRecord, Membership, SwitchoverRequest, SyncRecord


@dataclass
class SimStore:
    holder: str | None = None
    term: int = 0
    lease_ttl: float = 0.0
    lease_expires: float = 0.0
    members: dict[str, tuple[MemberRecord, float]] = field(default_factory=dict)
    initialize: str | None = None
    sync: SyncRecord | None = None
    sync_version: int = 0
    switchover: tuple[SwitchoverRequest, float] | None = None
    history: LeaderHistory | None = None
    membership: Membership | None = None  # an operator's scaling (POST /membership): the config value's
    up: bool = True
    slow: bool = False
    acquisitions: list[tuple[float, str, int, str]] = field(default_factory=list)  # (time, holder, term, how)

    # --- reads ---------------------------------------------------------------------------------
    def live_holder(self, now: float) -> str | None:
        return self.holder if self.holder is not None and now < self.lease_expires else None

    def view(self, now: float) -> ClusterState:
        holder = self.live_holder(now)
        leader = Leader(holder, self.term, self.lease_ttl) if holder else None
        members = {n: rec for n, (rec, exp) in self.members.items() if now < exp}
        request = self.switchover[0] if self.switchover and now < self.switchover[1] else None
        return ClusterState(
            leader=leader,
            members=members,
            initialize=self.initialize,
            sync=self.sync,
            sync_version=self.sync_version,
            switchover=request,
            history=self.history,
            membership=self.membership,
        )

    # --- the lease -----------------------------------------------------------------------------
    def acquire(self, name: str, ttl: float, now: float) -> bool:
        if self.live_holder(now) is not None:
            return False
        self.holder, self.term, self.lease_ttl, self.lease_expires = name, self.term + 1, ttl, now + ttl
        self.acquisitions.append((now, name, self.term, "acquire"))
        return True

    def renew(self, name: str, ttl: float, now: float) -> bool:
        if self.live_holder(now) != name:
            return False
        self.lease_ttl, self.lease_expires = ttl, now + ttl
        return True

    def release(self, name: str, now: float) -> bool:
        if self.live_holder(now) != name:
            return False
        self.holder = None
        return True

    def take_over(self, from_name: str, to_name: str, ttl: float, now: float) -> bool:
        if self.live_holder(now) != from_name:
            return False
        self.holder, self.term, self.lease_ttl, self.lease_expires = to_name, self.term + 1, ttl, now + ttl
        self.acquisitions.append((now, to_name, self.term, "take-over"))
        return True

    # --- cluster state ---------------------------------------------------------------------------
    def claim_initialize(self, value: str) -> bool:
        if self.initialize is not None:
            return False
        self.initialize = value
        return True

    def set_initialize(self, expected: str, value: str) -> bool:
        if self.initialize != expected:
            return False
        self.initialize = value
        return True

    def clear_initialize(self, expected: str) -> bool:
        if self.initialize != expected:
            return False
        self.initialize = None
        return True

    def set_member(self, record: MemberRecord, ttl: float, now: float) -> None:
        self.members[record.name] = (record, now + ttl)

    def delete_member(self, name: str) -> None:
        self.members.pop(name, None)

    def set_sync(self, record: SyncRecord, expected_version: int) -> bool:
        if self.sync_version != expected_version:
            return False
        self.sync_version += 1
        self.sync = SyncRecord(record.leader, record.members, record.quorum, self.sync_version)
        return True

    def set_switchover(self, request: SwitchoverRequest, ttl: float, now: float) -> None:
        self.switchover = (request, now + ttl)

    def clear_switchover(self) -> None:
        self.switchover = None

    def set_history(self, name: str, history: LeaderHistory, now: float) -> bool:
        if self.live_holder(now) != name:
            return False
        self.history = history
        return True
