"""An operator's switchover or failover request, checked against the store's view before it is recorded.

Why here and not only in the leader's plan: the leader drops a request it cannot carry out
(pgkeel.ha.plan_lead.clear_switchover), which the operator would only see in its log. What any
node can know at once from the store (unknown member, no leader, a target that is not a streaming
replica) is refused to the caller instead, with the reason. Pure: the same view, the same answer.
The target test is the one the leader applies (pgkeel.ha.facts.switchover_target).

A scheduled request (`at`, wall clock) is checked the same way when it is made, and again by the
leader when it is due; its time must lie ahead, within MAX_AHEAD (a maintenance window, not a
calendar: a request left for months would fire long after anyone remembers it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pgkeel.ha.records import ClusterState, MemberRecord, MemberState, Role, SwitchoverRequest

# States in which a member's postgres runs: what a forced failover needs of its target (elect.forced).
_RUNNING = frozenset({MemberState.RUNNING, MemberState.STREAMING, MemberState.RECOVERING})
MAX_AHEAD = 7 * 86400.0  # the latest a switchover may be scheduled, seconds from now


class Refusal(StrEnum):
    """Why a request was refused (the API maps these to HTTP statuses)."""

    UNKNOWN_MEMBER = "unknown-member"
    LEADER_MISMATCH = "leader-mismatch"
    NO_LEADER = "no-leader"
    ALREADY_LEADER = "already-leader"
    NOT_ELIGIBLE = "not-eligible"
    NO_CANDIDATE = "no-candidate"
    BAD_TIME = "bad-time"


class RequestRefused(ValueError):
    """A request refused before it was recorded: nothing changed in the store."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def can_take_over(record: MemberRecord | None) -> bool:
    """What the leader requires of a switchover target: a streaming replica with an address."""
    return record is not None and record.streaming_replica and record.address is not None


def _describe(name: str, record: MemberRecord | None) -> str:
    if record is None:
        return f"{name} has no member record (its agent is not running)"
    return f"{name} is {record.role}/{record.state}"


def parse_time(text: str) -> float:
    """Epoch seconds from an ISO 8601 time (`2026-12-03T20:00`, UTC without an offset, or with one such as
    `+01:00`); ValueError saying how to write it."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        example = "2026-12-03T20:00 (UTC) or 2026-12-03T21:00+01:00"
        raise ValueError(f"{text!r}: an ISO 8601 time such as {example}") from None
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).timestamp()


def check_time(at: float, wall_now: float, force: bool) -> None:
    """RequestRefused unless `at` (epoch seconds) is a time a switchover may be scheduled for."""
    if force:
        raise RequestRefused(Refusal.BAD_TIME, "a forced failover runs at once: it cannot be scheduled")
    if at <= wall_now:
        raise RequestRefused(Refusal.BAD_TIME, "the scheduled time is in the past: nothing requested")
    if at > wall_now + MAX_AHEAD:
        days = MAX_AHEAD / 86400
        raise RequestRefused(Refusal.BAD_TIME, f"the scheduled time is more than {days:g} days ahead: nothing asked")


def store_ttl(request: SwitchoverRequest, switchover_ttl: float, wall_now: float) -> float:
    """How long the store keeps the request: until its time (if scheduled), then switchover_ttl to act on it."""
    return switchover_ttl + (max(0.0, request.at - wall_now) if request.at is not None else 0.0)


def check_request(
    state: ClusterState,
    members: list[str],
    to: str | None,
    force: bool,
    leader: str | None = None,
    at: float | None = None,
    wall_now: float = 0.0,
) -> SwitchoverRequest:
    """The request to record, or RequestRefused with the reason the caller can act on.

    `leader`, when given, is a precondition (Patroni's `leader`): the request stands only if that
    member holds the lease now. `at` schedules it (see check_time); the target is checked now too,
    so a typo is refused today rather than dropped at the scheduled time.
    """
    if at is not None:
        check_time(at, wall_now, force)
    for name in (to, leader):
        if name is not None and name not in members:
            raise RequestRefused(Refusal.UNKNOWN_MEMBER, f"unknown member {name!r}; members are {', '.join(members)}")
    current = state.leader_name
    if leader is not None and leader != current:
        now = f"the leader is {current}" if current else "no leader holds the lease"
        raise RequestRefused(Refusal.LEADER_MISMATCH, f"{now}, not {leader}: nothing requested")
    if current is None:
        if not force:
            raise RequestRefused(
                Refusal.NO_LEADER,
                "no leader holds the lease: a switchover needs one; "
                "`failover --to NAME --force` promotes a member anyway",
            )
        record = state.members.get(to) if to else None
        if to is None or record is None or record.role is Role.REFUSED or record.state not in _RUNNING:
            raise RequestRefused(
                Refusal.NOT_ELIGIBLE,
                f"{_describe(to or '?', record)}: a forced failover needs its postgres running",
            )
        return SwitchoverRequest(source=None, target=to, force=force)
    if to == current:
        raise RequestRefused(Refusal.ALREADY_LEADER, f"{to} is already the leader")
    if to is not None:
        record = state.members.get(to)
        if not can_take_over(record):
            raise RequestRefused(
                Refusal.NOT_ELIGIBLE, f"{_describe(to, record)}: only a streaming replica can take over"
            )
    elif not any(can_take_over(state.members.get(name)) for name in members if name != current):
        others = "; ".join(_describe(name, state.members.get(name)) for name in members if name != current)
        raise RequestRefused(Refusal.NO_CANDIDATE, f"no streaming replica can take over ({others})")
    return SwitchoverRequest(source=current, target=to, force=force, at=at)
