"""The order of a rolling restart: replicas one at a time, then one switchover, then the old primary; the
standby-floor parameters ordered as PostgreSQL requires, and no order at all when none is safe."""

from __future__ import annotations

import pytest

from pgkeel.local.restart_order import MemberView, OrderRefused, StepKind, rolling_order, switchover_target
from pgkeel.pgconf.changes import FloorChange

NONE = FloorChange((), ())
RAISED = FloorChange(("max_connections",), ())
LOWERED = FloorChange((), ("max_connections",))
PENDING = ("shared_buffers",)


def cluster(pending: dict[str, tuple[str, ...]] | None = None, **roles: str) -> list[MemberView]:
    pending = pending if pending is not None else {n: PENDING for n in ("pg-0", "pg-1", "pg-2")}
    states = {"pg-0": "primary", "pg-1": "replica", "pg-2": "replica", **roles}
    return [MemberView(n, role, role == "replica", pending.get(n, ())) for n, role in states.items()]


def plan(members: list[MemberView], floors: FloorChange = NONE, **kw: object) -> list[tuple[StepKind, str]]:
    return [(s.kind, s.member) for s in rolling_order(members, "pg-0", floors, **kw)]  # type: ignore[arg-type]


def test_replicas_one_at_a_time_then_one_switchover_then_the_old_primary() -> None:
    steps = rolling_order(cluster(), "pg-0", NONE)
    assert [(s.kind, s.member) for s in steps] == [
        (StepKind.RESTART, "pg-1"),
        (StepKind.RESTART, "pg-2"),
        (StepKind.SWITCHOVER, "pg-0"),
        (StepKind.RESTART, "pg-0"),
    ]
    assert steps[-1].if_pending and not steps[0].if_pending
    assert sum(s.kind is StepKind.SWITCHOVER for s in steps) == 1  # one write outage
    assert all(s.kind is not StepKind.RESTART_IN_PLACE for s in steps)


def test_raising_a_floor_restarts_standbys_first_and_switches_over_to_one_of_them() -> None:
    steps = rolling_order(cluster(), "pg-0", RAISED)
    kinds = [s.kind for s in steps]
    assert kinds.index(StepKind.SWITCHOVER) > max(i for i, s in enumerate(steps) if s.member != "pg-0")
    assert "max_connections" in steps[kinds.index(StepKind.SWITCHOVER)].why


def test_lowering_a_floor_restarts_the_primary_in_place_first_and_never_switches_over() -> None:
    assert plan(cluster(), LOWERED) == [
        (StepKind.RESTART_IN_PLACE, "pg-0"), (StepKind.RESTART, "pg-1"), (StepKind.RESTART, "pg-2")
    ]


def test_lowering_refuses_to_restart_a_replica_before_the_primary() -> None:
    with pytest.raises(OrderRefused, match="primary pg-0 restarts first"):
        rolling_order(cluster(), "pg-0", LOWERED, only="pg-1")
    # floors are measured against what the primary runs: once it runs the lower value, nothing is lowered
    done = cluster({"pg-1": PENDING, "pg-2": PENDING})
    assert plan(done, NONE, only="pg-1") == [(StepKind.RESTART, "pg-1")]


def test_lowering_restarts_the_primary_first_even_when_its_pending_list_is_not_reported_yet() -> None:
    stale = cluster({"pg-1": PENDING, "pg-2": PENDING})  # the primary's list lags its reload
    assert plan(stale, LOWERED, pending_only=True)[0] == (StepKind.RESTART_IN_PLACE, "pg-0")


def test_raising_and_lowering_at_once_has_no_order() -> None:
    with pytest.raises(OrderRefused, match="two documents"):
        rolling_order(cluster(), "pg-0", FloorChange(("max_connections",), ("max_wal_senders",)))


def test_pending_only_skips_members_with_nothing_pending() -> None:
    assert plan(cluster({"pg-2": PENDING}), pending_only=True) == [(StepKind.RESTART, "pg-2")]
    assert plan(cluster({}), pending_only=True) == []


def test_one_member_named_the_primary_is_restarted_by_a_switchover() -> None:
    assert plan(cluster(), only="pg-0") == [(StepKind.SWITCHOVER, "pg-0"), (StepKind.RESTART, "pg-0")]
    assert plan(cluster(), only="pg-2") == [(StepKind.RESTART, "pg-2")]
    with pytest.raises(OrderRefused, match="unknown member 'pg-9'"):
        rolling_order(cluster(), "pg-0", NONE, only="pg-9")


def test_a_one_node_cluster_restarts_its_primary_in_place() -> None:
    alone = [MemberView("pg-0", "primary", False, PENDING)]
    assert plan(alone) == [(StepKind.RESTART_IN_PLACE, "pg-0")]


def test_a_replica_that_does_not_stream_stops_the_whole_restart() -> None:
    with pytest.raises(OrderRefused, match="pg-2 is stopped"):
        rolling_order(cluster(**{"pg-2": "stopped"}), "pg-0", NONE)
    with pytest.raises(OrderRefused, match="no running primary"):
        rolling_order(cluster(), None, NONE)


def test_the_switchover_target_is_a_restarted_caught_up_replica() -> None:
    members = [
        MemberView("pg-0", "primary", False, PENDING),
        MemberView("pg-1", "replica", True, PENDING, 0),
        MemberView("pg-2", "replica", True, (), 4096),
        MemberView("pg-3", "replica", True, (), 0),
        MemberView("pg-4", "replica", False, (), 0),
    ]
    assert switchover_target(members, "pg-0") == "pg-3"
    assert switchover_target(members[:1], "pg-0") is None
