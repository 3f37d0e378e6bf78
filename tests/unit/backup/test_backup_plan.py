"""The backup schedule's decision (pgkeel.backup.plan): one runner, and across failovers neither a skipped
nor a doubled occurrence.

The property test plays three agents against one record with the store's compare-and-swap: the leader
changes, the leader's agent dies in the middle of a backup (its pgBackRest finishing or not, holding
the repository's lock while it runs), and agents come back. What must hold at the end: every
occurrence of the schedule has a backup that started after it and before the next one, and no two
backups belong to the same occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from pgkeel.backup.plan import (
    ABANDONED,
    Abandon,
    BackupRecord,
    Beat,
    Idle,
    Request,
    Result,
    Run,
    Seed,
    Situation,
    Start,
    Take,
    abandon,
    already_made,
    decide,
)
from pgkeel.backup.schedule import Cron

T0 = datetime(2026, 12, 4, 0, 0, 30, tzinfo=UTC).timestamp()
EVERY_TEN = {"full": Cron.parse("*/10 * * * *")}


def situation(record: BackupRecord, now: float = T0, me: str = "a", leader: bool = True,
              running_here: str | None = None, schedules: dict[str, Cron] | None = None) -> Situation:
    return Situation(now, me, leader, running_here, EVERY_TEN if schedules is None else schedules, record,
                     beat_every=15.0, stale_after=60.0, retry_after=60.0)


def test_first_sight_seeds_the_schedule_without_running_what_fired_before() -> None:
    step = decide(situation(BackupRecord()))
    assert step == Seed({"full": T0 - 30})  # 00:00, the occurrence before the cluster knew the schedule


def test_a_due_occurrence_starts_a_run_on_the_leader_only() -> None:
    record = BackupRecord(seen={"full": T0 - 30 - 600})  # 23:50 taken care of, 00:00 due
    step = decide(situation(record))
    assert isinstance(step, Start) and step.run.kind == "full" and step.run.not_before == T0 - 30
    assert step.run.covers == {"full": T0 - 30}
    assert isinstance(decide(situation(record, leader=False)), Idle)


def test_a_full_backup_also_takes_care_of_a_diff_due_with_it() -> None:
    schedules = {"full": Cron.parse("0 0 * * *"), "diff": Cron.parse("*/10 * * * *")}
    record = BackupRecord(seen={"full": T0 - 30 - 86400, "diff": T0 - 30 - 600})
    step = decide(situation(record, schedules=schedules))
    assert isinstance(step, Start) and step.run.kind == "full"
    assert step.run.covers == {"full": T0 - 30, "diff": T0 - 30}


def test_requests_come_before_the_schedule() -> None:
    record = BackupRecord(seen={"full": T0 - 630}, requests=(Request("r1", "diff", T0 - 5),))
    step = decide(situation(record))
    assert isinstance(step, Start) and step.run.request == "r1" and step.run.kind == "diff" and step.run.covers == {}


def test_a_run_beats_while_its_worker_runs_and_a_stale_one_is_abandoned_by_the_leader() -> None:
    run = Run("a-1", "full", "a", T0 - 100, T0 - 20, T0 - 100)
    record = BackupRecord(seen={"full": T0 - 630}, run=run)
    assert decide(situation(record, running_here="a-1")) == Beat("a-1")
    assert isinstance(decide(situation(record, me="b")), Idle)  # beating recently: someone runs it
    late = T0 + 45  # 65 s since the last beat
    assert decide(situation(record, now=late, me="b")) == Abandon(run)
    assert isinstance(decide(situation(record, now=late, me="c", leader=False)), Idle)  # only the leader clears
    cleared = abandon(record, run, late)
    assert cleared.run is None and cleared.results[-1].error == ABANDONED
    assert isinstance(decide(situation(cleared, now=late, me="b")), Start)  # due again, at once


def test_a_failed_run_is_retried_after_retry_after_and_a_request_is_not() -> None:
    occurrence = T0 - 30
    failed = Result("a-1", "full", "a", T0 - 50, T0 - 10, False, {"full": occurrence}, error="repo unreachable")
    record = BackupRecord(seen={"full": occurrence - 600}).finish(failed, T0 - 10)
    assert isinstance(decide(situation(record, now=T0)), Idle)
    assert isinstance(decide(situation(record, now=T0 + 51)), Start)
    request = Request("r1", "full", T0 - 60)
    asked = BackupRecord(seen={"full": occurrence}, requests=(request,))
    done = asked.finish(replace(failed, covers={}, request="r1"), T0)
    assert done.requests == () and done.result_of("r1") is not None  # the caller hears the failure


def test_a_backup_already_in_the_repository_counts_as_the_run() -> None:
    run = Run("b-1", "diff", "b", T0, T0, T0 - 30)
    assert already_made(run, [("full", T0 - 100, "old"), ("full", T0 - 20, "F")]) == ("full", T0 - 20, "F")
    assert already_made(run, [("incr", T0 - 20, "I")]) is None
    assert already_made(replace(run, kind="full"), [("diff", T0 - 20, "D")]) is None


# --- the property: three agents, failovers, dead agents, orphaned pgBackRest processes -------------------
STEP = 5.0
INTERVAL = 600.0


@dataclass
class Orphan:
    """A pgBackRest backup whose agent died: it holds the lock until it ends, and may complete."""

    ends: float
    completes: bool
    start: float


@dataclass
class Agent:
    name: str
    alive: bool = True
    worker: Run | None = None
    worker_ends: float = 0.0
    back_at: float = 0.0


@dataclass
class World:
    record: BackupRecord = field(default_factory=BackupRecord)
    version: int = 0
    repo: list[tuple[str, float, str]] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    locked_until: float = 0.0

    def cas(self, expected: int, new: BackupRecord) -> bool:
        if expected != self.version:
            return False
        self.record, self.version = new, self.version + 1
        return True


faults = st.lists(
    st.tuples(
        st.sampled_from(["kill-leader", "switch-leader", "none"]),
        st.floats(min_value=0, max_value=200),  # seconds after the occurrence
        st.booleans(),  # a killed agent's pgBackRest completes
        st.floats(min_value=20, max_value=300),  # how long the killed agent stays dead
    ),
    min_size=12,
    max_size=12,
)


@settings(max_examples=250, deadline=None)
@given(faults=faults, durations=st.lists(st.floats(min_value=20, max_value=110), min_size=60, max_size=60))
def test_every_occurrence_gets_exactly_one_backup_across_failovers_and_dead_agents(
    faults: list[tuple[str, float, bool, float]], durations: list[float]
) -> None:
    world = World()
    agents = {n: Agent(n) for n in ("a", "b", "c")}
    leader = "a"
    start = T0 - 30 + 1  # 00:00:01: seeded at 00:00, first occurrence 00:10
    end = start + INTERVAL * (len(faults) + 1)
    fault_at = {start + INTERVAL * (i + 1) + offset: (kind, completes, dead)
                for i, (kind, offset, completes, dead) in enumerate(faults)}
    now, attempts = start, 0
    while now < end:
        for moment in [m for m in fault_at if now - STEP < m <= now]:
            kind, completes, dead = fault_at.pop(moment)
            old = agents[leader]
            if kind == "kill-leader":
                old.alive, old.back_at = False, now + dead
                if old.worker is not None:
                    world.orphans.append(Orphan(old.worker_ends, completes, old.worker.started))
                old.worker = None
            if kind != "none":
                leader = next(n for n in agents if n != leader and agents[n].alive)
        for agent in agents.values():
            if not agent.alive and now >= agent.back_at:
                agent.alive = True
        for orphan in list(world.orphans):
            if now >= orphan.ends:
                world.orphans.remove(orphan)
                if orphan.completes:
                    world.repo.append(("full", orphan.start, f"orphan-{orphan.start}"))
        for agent in agents.values():
            if not agent.alive:
                continue
            run = agent.worker
            if run is not None and now >= agent.worker_ends:  # the worker finishes and records its result
                world.repo.append(("full", run.started, run.id))
                result = Result(run.id, run.kind, agent.name, run.started, now, True, dict(run.covers), run.request)
                world.cas(world.version, world.record.finish(result, now))
                agent.worker = None
            step = decide(Situation(now, agent.name, agent.name == leader, agent.worker.id if agent.worker else None,
                                    EVERY_TEN, world.record, 15.0, 60.0, 60.0))
            version = world.version
            if isinstance(step, Seed):
                world.cas(version, replace(world.record, seen=step.seen))
            elif isinstance(step, Beat) and world.record.run is not None:
                world.cas(version, replace(world.record, run=replace(world.record.run, beat=now)))
            elif isinstance(step, Abandon):
                world.cas(version, abandon(world.record, step.run, now))
            elif isinstance(step, Start) and world.cas(
                version, replace(world.record, run=step.run)
            ):
                made = already_made(step.run, world.repo)
                if made is not None:  # the agent's execute(): recorded, not taken again
                    result = Result(step.run.id, "full", agent.name, now, now, True, dict(step.run.covers), None,
                                    label=made[2])
                    world.cas(world.version, world.record.finish(result, now))
                elif any(o.ends > now for o in world.orphans):  # pgBackRest's lock: another backup runs
                    result = Result(step.run.id, "full", agent.name, now, now, False, dict(step.run.covers), None,
                                    error="unable to acquire lock")
                    world.cas(world.version, world.record.finish(result, now))
                else:
                    agent.worker, agent.worker_ends = step.run, now + durations[attempts % len(durations)]
                    attempts += 1
        now += STEP
    occurrences = [start - 1 + INTERVAL * i for i in range(1, len(faults) + 1)]
    starts = sorted(b[1] for b in world.repo)
    for occurrence in occurrences:
        inside = [s for s in starts if occurrence <= s < occurrence + INTERVAL]
        assert len(inside) == 1, (occurrence, starts, world.record.results)
    assert all(s >= occurrences[0] for s in starts)  # nothing ran for the seeded occurrence


def test_a_drill_runs_on_a_streaming_replica_which_takes_it_and_the_leader_clears_it_if_it_goes_silent() -> None:
    schedules = {"drill": Cron.parse("0 3 * * 0")}
    record = BackupRecord(seen={"drill": T0 - 7 * 86400}, requests=(Request("r1", "drill", T0 - 5),))
    leader = replace(situation(record, schedules=schedules), drill_runner="b")
    step = decide(leader)
    assert isinstance(step, Start) and step.run.member == "b" and step.run.kind == "drill"
    assigned = replace(record, run=step.run)
    assert decide(situation(assigned, me="b", leader=False, schedules=schedules)) == Take(step.run)
    assert isinstance(decide(situation(assigned, me="c", leader=False, schedules=schedules)), Idle)
    assert isinstance(decide(replace(leader, record=assigned)), Idle)  # b beats: nobody else touches it
    silent = replace(leader, record=assigned, now=T0 + 61)
    assert decide(silent) == Abandon(step.run)
    late = situation(assigned, now=T0 + 61, me="b", leader=False, schedules=schedules)
    assert isinstance(decide(late), Idle)  # too late to take: the leader clears it and assigns it again
    no_replica = decide(situation(record, schedules=schedules))
    assert isinstance(no_replica, Start) and no_replica.run.member == "a"  # none streams: the leader runs it


def test_a_red_drill_is_a_result_and_is_not_retried_until_its_next_occurrence() -> None:
    schedules = {"drill": Cron.parse("*/10 * * * *")}
    occurrence = T0 - 30
    red = Result("b-1", "drill", "b", T0 - 20, T0 - 5, False, {"drill": occurrence}, error="archive-end: gap")
    record = BackupRecord(seen={"drill": occurrence - 600}).finish(red, T0 - 5)
    assert record.seen["drill"] == occurrence
    assert isinstance(decide(situation(record, now=T0 + 300, schedules=schedules)), Idle)
    assert record.last_result(drill=True) == red and record.last_result() is None  # not a backup result
