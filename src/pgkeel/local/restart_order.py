"""The order of a rolling restart, decided from the members' states before anything is restarted (pure).

Replicas one at a time, each back and streaming before the next; then a switchover to a caught-up
replica; then the old primary (its postgres was already restarted by the switchover, which stops
it and starts it as a standby with the files as they are now, so normally nothing is left to do).
Writes stop once: for the switchover.

The five parameters a hot standby must not have below its primary (pgconf.changes.STANDBY_FLOORS)
bound the order, because PostgreSQL refuses to start a standby whose value is lower than the one
its primary announced in the WAL, and every member reads the same postgresql.conf:
- raised: standbys first. Each restarted standby is at or above the primary; the switchover target
  is a restarted standby, so the new primary's higher value meets standbys that already have it,
  and the old primary comes back from the switchover with the new value too.
- lowered: the primary first, restarted in place (the lease holder keeps renewing its lease while
  postgres restarts). A switchover first would not do: the target still runs the old, higher value,
  and the old primary would come back as its standby with the lower one, which PostgreSQL refuses;
  so would any standby restarted before the primary. Once the primary runs the lower value (and has
  announced it), the standbys follow one at a time. The write outage is one restart of the primary
  instead of one switchover; this is the only case, besides a one-node cluster, that restarts a
  primary in place.
- raised and lowered at once: no order satisfies both; refused, nothing restarted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pgkeel.pgconf.changes import FloorChange, mixed_floor_error


@dataclass(frozen=True)
class MemberView:
    """A member as its /status reports it, reduced to what the order depends on."""

    name: str
    role: str  # primary | replica | starting | stopped
    streaming: bool
    pending: tuple[str, ...]  # parameters waiting for a restart (asked of postgres: /status may lag a reload)
    replay_lag_bytes: int | None = None


class StepKind(StrEnum):
    RESTART = "restart"  # a replica: its agent stops and starts postgres as a standby
    SWITCHOVER = "switchover"  # hand the primary role to a caught-up replica
    RESTART_IN_PLACE = "restart-in-place"  # the primary, keeping the lease (one node, or a lowering)


@dataclass(frozen=True)
class Step:
    kind: StepKind
    member: str
    why: str
    if_pending: bool = False  # only if the member still has parameters pending (the old primary)


class OrderRefused(ValueError):
    """No safe order exists now; nothing was restarted. The message says why and what to do."""


def rolling_order(
    members: list[MemberView],
    leader: str | None,
    floors: FloorChange,
    only: str | None = None,
    pending_only: bool = False,
) -> list[Step]:
    """The steps of a rolling restart of every member (or `only` one, or those with `pending_only`)."""
    if floors.mixed:
        raise OrderRefused(mixed_floor_error(floors))
    by_name = {m.name: m for m in members}
    if only is not None and only not in by_name:
        raise OrderRefused(f"unknown member {only!r}; members are {', '.join(sorted(by_name))}")
    if leader is None or leader not in by_name or by_name[leader].role != "primary":
        raise OrderRefused("no running primary holds the lease: a rolling restart needs one (see `pgkeel status`)")
    replicas = sorted(name for name in by_name if name != leader)
    unhealthy = [by_name[n] for n in replicas if not (by_name[n].role == "replica" and by_name[n].streaming)]
    if unhealthy:
        said = ", ".join(f"{m.name} is {m.role}{'' if m.streaming else ' (not streaming)'}" for m in unhealthy)
        raise OrderRefused(
            f"{said}: restarting another member now could leave too few replicas to acknowledge writes; "
            "bring it back first (`pgkeel up` starts what is down)"
        )

    def wanted(name: str) -> bool:
        if only is not None:
            return name == only
        return bool(by_name[name].pending) if pending_only else True

    if not replicas:
        if not wanted(leader):
            return []
        return [Step(StepKind.RESTART_IN_PLACE, leader, "a one-node cluster: the primary restarts in place")]
    steps: list[Step] = []
    if floors.lowered:  # measured against what the primary runs now: it has not restarted with them yet
        if only is not None and only != leader:
            raise OrderRefused(
                f"{', '.join(floors.lowered)} go down: PostgreSQL refuses a standby below its primary, so the "
                f"primary {leader} restarts first; run `pgkeel restart` without a member (or `restart {leader}`)"
            )
        steps.append(Step(
            StepKind.RESTART_IN_PLACE, leader,
            f"lowers {', '.join(floors.lowered)}: the primary first, in place, so no standby starts below it",
        ))
        why = "after the primary: its lower value is announced, so this standby may start with it"
        return steps + [Step(StepKind.RESTART, name, why) for name in replicas if wanted(name)]
    steps += [Step(StepKind.RESTART, name, "a replica, one at a time") for name in replicas if wanted(name)]
    if wanted(leader):
        why = "the primary: a switchover to a caught-up replica restarts it as a standby"
        if floors.raised:
            why += f" (the target already runs the raised {', '.join(floors.raised)})"
        steps.append(Step(StepKind.SWITCHOVER, leader, why))
        steps.append(Step(StepKind.RESTART, leader, "the old primary, if still pending", if_pending=True))
    return steps


def switchover_target(members: list[MemberView], leader: str) -> str | None:
    """The replica to hand over to: streaming; already restarted (nothing pending) before one that is not;
    then the least replay lag; then by name."""
    candidates = [m for m in members if m.name != leader and m.role == "replica" and m.streaming]
    if not candidates:
        return None
    best = min(candidates, key=lambda m: (bool(m.pending), m.replay_lag_bytes or 0, m.name))
    return best.name
