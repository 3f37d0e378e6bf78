"""Named scenarios (pgkeel.sim.scenarios): fixed schedules and what must come of them."""

from __future__ import annotations

import pytest

from pgkeel.ha.records import FenceKind
from pgkeel.ha.settings import Mode
from pgkeel.sim import scenarios as sc
from pgkeel.sim.runner import RunResult, config_for, run

BUG_STALE_RECLAIM = (
    "rule elect.reclaim: a primary superseded while it was cut off from the store reclaims the lease "
    "with its old timeline when the store returns (fix: require history.leader == me to reclaim)"
)
BUG_INELIGIBLE_BEST = (
    "election.eligibility: a node with rewind_needed (e.g. the old primary after Fence) excludes itself "
    "but is still 'a better candidate' for the others, so nobody promotes (fix: see report)"
)


def assert_clean(r: RunResult) -> None:
    assert r.violations == [], "\n".join(r.transcript[-40:])
    assert r.split_windows == 0


def promotions(r: RunResult) -> list[str]:
    return [line for line in r.transcript if " promoted: " in line]


@pytest.mark.parametrize("mode", [Mode.ASYNC, Mode.QUORUM])
def test_kill_primary_agent_30s(mode: Mode) -> None:
    r = sc.kill_primary_agent(mode)
    assert_clean(r)
    assert promotions(r), "the others take over while the agent is dead (the extension fences its postgres)"


def test_five_nodes_primary_and_best_replica_crash() -> None:
    r = sc.five_nodes_lose_primary_and_best_replica()
    assert_clean(r)
    assert any(20.0 < float(line.split()[0]) < 60.0 for line in promotions(r)), "a primary while both are down"


def test_replica_past_slot_limit_is_recloned_once() -> None:
    r = sc.replica_past_slot_limit(seed=1)
    assert_clean(r)
    assert sum("moved aside" in line for line in r.transcript) == 1
    w = run(
        1,
        sc._config(3, Mode.ASYNC),
        steps=300,
        faults=[sc.Fault(15.0, "crash-node", "@replica", duration=60.0)],
        keep_world=True,
    ).world
    assert w is not None
    assert all(n.pg.asides <= 1 for n in w.nodes.values())
    standbys = [n for n in w.nodes.values() if n.pg.in_recovery]
    assert standbys and all(n.pg.streaming for n in standbys), "the re-cloned replica streams again"


def test_bootstrap_killed_midway_recovers() -> None:
    r = sc.bootstrap_killed()
    assert_clean(r)
    assert any("[global.own-bootstrap-claim] Bootstrap=Done" in line for line in r.transcript)


def test_pause_whole_primary_past_ttl_async_extension() -> None:
    r = sc.pause_primary(FenceKind.EXTENSION)
    assert_clean(r)
    assert promotions(r)


def test_pause_whole_primary_without_fence_recovers_after_resume() -> None:
    r = sc.pause_primary(FenceKind.NONE)
    assert r.split_windows == 0  # holds: nobody promotes while the old primary cannot be asked
    assert_clean(r)  # fails: after the resume the old primary fences itself and everybody defers to it


def test_switchover_with_slow_checkpoint_is_not_a_failover() -> None:
    r = sc.switchover_slow_checkpoint()
    assert_clean(r)
    assert any("Checkpoint=Failed!" in line for line in r.transcript), "the checkpoint outlasted its budget"
    assert any("HandOver=Done" in line for line in r.transcript)
    assert not any("[elect." in line and "AcquireLeader=LeaseHeld" in line for line in r.transcript)


def test_store_outage_60s() -> None:
    assert_clean(sc.store_outage(Mode.QUORUM))
    assert_clean(sc.store_outage(Mode.ASYNC))


def test_candidate_without_store_does_not_block() -> None:
    r = sc.candidate_without_store()
    assert_clean(r)
    assert any(20.0 < float(line.split()[0]) < 60.0 for line in promotions(r))


def test_superseded_primary_does_not_reclaim_seed27() -> None:
    r = run(27, config_for(3, Mode.QUORUM))
    assert not any(v.kind == "lost-ack" for v in r.violations), "\n".join(r.transcript[-40:])


def test_replay_is_deterministic() -> None:
    a, b = run(5, config_for(3), steps=200), run(5, config_for(3), steps=200)
    assert a.transcript == b.transcript and a.acks == b.acks


def test_replica_behind_two_failovers_never_reuses_a_timeline_id() -> None:
    r = sc.replica_behind_two_failovers(keep_world=True)
    assert_clean(r)
    timelines = [line.split("timeline ")[1].split()[0] for line in promotions(r)]
    assert len(timelines) == len(set(timelines)), promotions(r)  # each promotion made a timeline of its own
    assert r.world is not None
    standbys = [n for n in r.world.nodes.values() if n.pg.in_recovery]
    assert len(standbys) == 2 and all(n.pg.streaming for n in standbys), "both others stream again at the end"


# --- failsafe: the store going away does not take the database with it (pgkeel.ha.failsafe) ---------------


def acks_between(r: RunResult, start: float, end: float) -> int:
    assert r.world is not None
    return sum(start < a.at < end for a in r.world.acks)


@pytest.mark.parametrize("mode", [Mode.ASYNC, Mode.QUORUM])
def test_store_outage_60s_writes_go_on_on_the_members_promises(mode: Mode) -> None:
    r = sc.store_outage(mode, keep_world=True)
    assert_clean(r)
    assert acks_between(r, 20.0, 70.0) > 300, "the writer commits ~10/s; the primary kept serving"
    assert not any(15.0 < float(line.split()[0]) < 80.0 for line in promotions(r)), "no failover"


def test_store_outage_without_failsafe_stops_writes() -> None:
    r = sc.store_outage(Mode.QUORUM, failsafe=False, keep_world=True)
    assert_clean(r)
    assert acks_between(r, 20.0, 70.0) == 0


@pytest.mark.parametrize("mode", [Mode.ASYNC, Mode.QUORUM])
def test_primary_cut_from_the_store_only_keeps_serving(mode: Mode) -> None:
    r = sc.primary_cut_from_store(mode, keep_world=True)
    assert_clean(r)
    assert acks_between(r, 20.0, 70.0) > 300
    assert not any(15.0 < float(line.split()[0]) < 80.0 for line in promotions(r)), "no failover"
    assert r.rules["elect.failsafe-promised"] > 0


@pytest.mark.parametrize("mode", [Mode.ASYNC, Mode.QUORUM])
def test_primary_cut_from_store_and_peers_fences_and_the_others_elect(mode: Mode) -> None:
    r = sc.primary_isolated(mode, keep_world=True)
    assert_clean(r)
    assert any(15.0 < float(line.split()[0]) < 30.0 for line in promotions(r)), "a new primary within 15 s"


# --- member tags (spec.members: noFailover, noSync, failoverPriority) ------------------------------------------


@pytest.mark.parametrize("mode", [Mode.ASYNC, Mode.QUORUM])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tagged_members_no_failover_is_never_elected_and_no_sync_never_waited_for(mode: Mode, seed: int) -> None:
    r = sc.tagged_members(mode, seed, keep_world=True)
    assert_clean(r)
    elected = [line.split()[1] for line in promotions(r) if float(line.split()[0]) > 5.0]
    assert len(elected) >= 2, "both crashes are failed over"
    assert "pg-1" not in elected, "noFailover is never promoted automatically"
    if mode is Mode.QUORUM:
        assert r.world is not None and r.world.acks
        rules = {a.rule for a in r.world.acks}
        assert all(rule.startswith("ANY 1 (") for rule in rules), rules
        assert not any('"pg-4"' in rule or '"pg-1"' in rule for rule in rules), "tagged members are never synchronous"


@pytest.mark.parametrize("mode", [Mode.ASYNC, Mode.QUORUM])
@pytest.mark.parametrize("seed", [1, 2])
def test_scaling_three_five_three_with_a_failover_on_either_side(mode: Mode, seed: int) -> None:
    r = sc.scale_three_five_three(mode, seed, keep_world=True)
    assert_clean(r)  # no two writable nodes, no acknowledged write lost in quorum mode, through both changes
    elected = [(float(line.split()[0]), line.split()[1]) for line in promotions(r) if float(line.split()[0]) > 5.0]
    assert [t for t, _ in elected if 60 < t < 100], "the five elect after the first crash"
    assert [t for t, _ in elected if 140 < t < 180], "the three elect after the second crash"
    assert not [n for t, n in elected if t > 120 and n in ("pg-3", "pg-4")], "removed members are never promoted"
    assert r.world is not None
    acks = r.world.acks
    assert [a for a in acks if a.at > 150], "writes go on after the second failover"
    if mode is Mode.QUORUM:
        five = {a.rule for a in acks if 40 < a.at < 60}
        assert five and all(rule.startswith("ANY 2 (") and rule.count('"') == 8 for rule in five), five
        late = {a.rule for a in acks if a.at > 130}
        assert late and all(rule.startswith("ANY 1 (") and "pg-3" not in rule and "pg-4" not in rule
                            for rule in late), late
