"""An operator's re-clone (POST /reinit) and a scheduled switchover (`switchover --at`) through decide and remember.

A reinit runs once per request whatever came of it, and is refused up front for the leader, a cluster
without a running leader and a node that keeps an aside copy. A scheduled switchover does nothing
until its time, then takes the ordinary switchover path; times in the past or too far ahead are refused.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from builders import cluster, decide, kinds, obs, primary_pg, primary_record, record, stopped_pg

from pgkeel.ha import actions
from pgkeel.ha.memory import remember
from pgkeel.ha.model import Blocked, Done, Failed, Observation, ReinitRequest, Started
from pgkeel.ha.plan_reinit import reinit_refusal
from pgkeel.ha.records import MemberState, Role, SwitchoverRequest
from pgkeel.ha.switchover_request import (
    MAX_AHEAD,
    Refusal,
    RequestRefused,
    check_request,
    check_time,
    parse_time,
    store_ttl,
)

WALL = 1_800_000_000.0  # wall clock of the observations below (epoch seconds)
MEMBERS = ["pg-0", "pg-1", "pg-2"]


# --- reinit -------------------------------------------------------------------------------------------


def test_reinit_re_clones_once_and_a_newer_request_re_clones_again() -> None:
    o = replace(obs(), reinit_request=ReinitRequest(number=1))
    d = decide(o)
    assert d.rule == "follow.reinit-requested"
    reclone = d.actions[-1]
    assert isinstance(reclone, actions.Reclone) and "kept aside" in reclone.reason
    memory = remember(o, d, [(a, Started() if isinstance(a, actions.Reclone) else Done()) for a in d.actions])
    assert memory.reinit_done == 1
    assert decide(replace(obs(memory=memory), reinit_request=ReinitRequest(number=1))).rule == "follow.stream"
    assert decide(replace(obs(memory=memory), reinit_request=ReinitRequest(number=2))).rule == "follow.reinit-requested"


def test_a_failed_or_blocked_reinit_is_not_retried_behind_the_operators_back() -> None:
    o = replace(obs(), reinit_request=ReinitRequest(number=1))
    d = decide(o)
    for outcome in (Failed(error="pg_basebackup failed"), Blocked(error="clone does NOT fit")):
        memory = remember(o, d, [(a, outcome if isinstance(a, actions.Reclone) else Done()) for a in d.actions])
        assert memory.reinit_done == 1
        again = decide(replace(obs(memory=memory), reinit_request=ReinitRequest(number=1)))
        assert again.rule != "follow.reinit-requested"
    assert memory.alarm == "clone does NOT fit"  # a blocked clone says why in /status


def test_reinit_waits_while_the_leader_does_not_run_and_a_stopped_replica_re_clones_too() -> None:
    members = {"pg-0": record("pg-0", Role.PRIMARY, MemberState.STOPPED), "pg-1": record("pg-1")}
    waiting = replace(obs(state=cluster(members=members)), reinit_request=ReinitRequest(number=1))
    assert decide(waiting).rule != "follow.reinit-requested"
    down = replace(obs(pg=stopped_pg()), reinit_request=ReinitRequest(number=1))
    assert decide(down).rule == "follow.reinit-requested"  # before follow.start: the old data is not started


def test_a_clone_of_an_empty_node_after_the_request_carries_it_out() -> None:
    o = replace(obs(pg=stopped_pg(has_data=False)), reinit_request=ReinitRequest(number=1))
    d = decide(o)
    assert d.rule == "bootstrap.clone"
    assert remember(o, d, [(a, Started()) for a in d.actions]).reinit_done == 1


def test_reinit_is_refused_for_the_leader_without_a_running_leader_and_with_an_aside_copy() -> None:
    state = cluster()
    assert reinit_refusal(state, "pg-1", []) is None
    leader = reinit_refusal(state, "pg-0", [])
    assert leader is not None and "is the leader" in leader
    none = reinit_refusal(cluster(leader=None), "pg-1", [])
    assert none is not None and "no leader" in none
    stopped = cluster(members={"pg-0": record("pg-0", Role.PRIMARY, MemberState.STOPPED), "pg-1": record("pg-1")})
    down = reinit_refusal(stopped, "pg-1", [])
    assert down is not None and "not running as a primary" in down
    aside = reinit_refusal(state, "pg-1", ["/data/pg-1/data.aside"])
    assert aside is not None and "/data/pg-1/data.aside" in aside and "at most one" in aside


# --- scheduled switchover -------------------------------------------------------------------------------


def lead_obs(request: SwitchoverRequest, wall: float) -> Observation:
    return replace(obs("pg-0", pg=primary_pg(), state=cluster(switchover=request)), wall_now=wall)


def test_a_scheduled_switchover_does_nothing_before_its_time_and_switches_over_when_due() -> None:
    request = SwitchoverRequest(source="pg-0", target="pg-2", at=WALL + 5)
    before = decide(lead_obs(request, WALL))
    assert before.rule == "lead.serve" and "ClearSwitchover" not in kinds(before)
    due = decide(lead_obs(request, WALL + 5))
    assert due.rule == "lead.switchover" and kinds(due)[-2:] == ["HandOver", "ClearSwitchover"]


def test_a_scheduled_switchover_without_a_streaming_target_is_kept_until_due_then_dropped() -> None:
    members = {"pg-0": primary_record(), "pg-1": record("pg-1", state=MemberState.RECOVERING)}
    request = SwitchoverRequest(source="pg-0", target="pg-1", at=WALL + 60)
    state = cluster(members=members, switchover=request)
    o = replace(obs("pg-0", pg=primary_pg(), state=state), wall_now=WALL)
    assert decide(o).rule == "lead.serve"  # it may stream by then
    assert decide(replace(o, wall_now=WALL + 61)).rule == "lead.switchover-no-target"


def test_scheduled_requests_are_checked_now_and_kept_in_the_store_until_a_little_after_their_time() -> None:
    state = cluster()
    request = check_request(state, MEMBERS, "pg-2", False, at=WALL + 3600, wall_now=WALL)
    assert request == SwitchoverRequest(source="pg-0", target="pg-2", at=WALL + 3600)
    assert SwitchoverRequest.from_json(request.to_json()) == request
    assert store_ttl(request, 60.0, WALL) == pytest.approx(3660.0)
    assert store_ttl(SwitchoverRequest(source="pg-0"), 60.0, WALL) == 60.0
    assert "at" not in SwitchoverRequest(source="pg-0").to_json()  # the shape older agents know
    with pytest.raises(RequestRefused) as unknown:
        check_request(state, MEMBERS, "pg-9", False, at=WALL + 60, wall_now=WALL)
    assert unknown.value.reason is Refusal.UNKNOWN_MEMBER


@pytest.mark.parametrize(
    ("at", "force", "said"),
    [
        (WALL - 1, False, "in the past"),
        (WALL, False, "in the past"),
        (WALL + MAX_AHEAD + 1, False, "days ahead"),
        (WALL + 60, True, "cannot be scheduled"),
    ],
)
def test_a_time_in_the_past_too_far_ahead_or_with_force_is_refused(at: float, force: bool, said: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        check_time(at, WALL, force)
    assert refused.value.reason is Refusal.BAD_TIME and said in str(refused.value)


def test_times_parse_as_utc_without_an_offset_and_with_one_as_given() -> None:
    assert parse_time("2026-12-03T20:00") == 1796328000.0
    assert parse_time("2026-12-03T21:00+01:00") == 1796328000.0
    assert parse_time(" 2026-12-03 20:00:30 ") == 1796328030.0
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("tomorrow 8pm")
