"""Running simulations: one seed (with a transcript that replays it), or many (with figures).

`run(seed, ...)` builds a world, boots every agent, applies a fault schedule (random from the
seed unless given), lets the cluster run `steps` × 0.1 s of simulated time plus a quiet tail in
which every fault has healed, and checks pgkeel.sim.checks after every event. Same arguments,
same result: the transcript is the replay.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from pgkeel.ha.records import FenceKind
from pgkeel.ha.settings import HASettings, Mode
from pgkeel.sim.agent import SimAgent
from pgkeel.sim.checks import Checker, Violation
from pgkeel.sim.faults import Fault, Faults, random_schedule
from pgkeel.sim.world import SimConfig, World

STEP = 0.1  # simulated seconds per step


@dataclass
class RunResult:
    seed: int
    violations: list[Violation]
    transcript: list[str]
    events: int
    sim_time: float
    acks: int
    split_windows: int
    lost_async: int
    rules: Counter[str] = field(default_factory=Counter)
    world: World | None = None

    @property
    def ok(self) -> bool:
        return not self.violations


SIM_MAX_LAG = 30  # the simulated WAL advances one unit per commit, ten a second: 3 s of writes


def config_for(nodes: int = 3, mode: Mode = Mode.QUORUM, fence: FenceKind = FenceKind.EXTENSION) -> SimConfig:
    sync = 1 if nodes <= 3 else 2  # 2n+1 nodes survive n failures: ANY n over the others
    settings = HASettings(mode=mode, sync_standbys=sync if nodes > 1 else 0, max_lag_bytes=SIM_MAX_LAG)
    return SimConfig(nodes=nodes, settings=settings, fence=fence)


Hook = Callable[[World, Faults], None]


def run(
    seed: int,
    config: SimConfig | None = None,
    steps: int = 600,
    faults: list[Fault] | None = None,
    tail: float = 45.0,
    liveness_bound: float = 30.0,
    setup: Hook | None = None,
    keep_world: bool = False,
) -> RunResult:
    config = config or config_for()
    world = World(config, seed)
    for name in config.names:
        world.agents[name] = SimAgent(world, name)
    injector = Faults(world)
    if faults is None:
        faults = random_schedule(random.Random(seed * 7919 + 1), config.names, steps * STEP)
    injector.schedule(faults)
    if setup is not None:
        setup(world, injector)
    checker = Checker(world, liveness_bound)
    for i, agent in enumerate(world.agents.values()):
        agent.boot(0.05 * i + world.rng.uniform(0.0, 0.3))
    world.start_background()
    horizon = max([steps * STEP] + [f.at + f.duration for f in faults]) + tail
    while world.pop(horizon):
        checker.after_step()
    checker.check_acks()
    rules: Counter[str] = Counter()
    for agent in world.agents.values():
        rules.update(agent.rules)
    return RunResult(
        seed=seed,
        violations=checker.violations,
        transcript=world.events,
        events=world.steps,
        sim_time=world.t,
        acks=len(world.acks),
        split_windows=checker.split_windows,
        lost_async=checker.lost_async,
        rules=rules,
        world=world if keep_world else None,
    )


@dataclass
class Summary:
    schedules: int = 0
    failed: list[int] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    events: int = 0
    sim_time: float = 0.0
    acks: int = 0
    lost_async: int = 0
    seconds: float = 0.0

    def add(self, r: RunResult) -> None:
        self.schedules += 1
        self.events += r.events
        self.sim_time += r.sim_time
        self.acks += r.acks
        self.lost_async += r.lost_async
        if r.violations:
            self.failed.append(r.seed)
        self.by_kind.update(v.kind for v in r.violations)

    def merge(self, other: Summary) -> None:
        self.schedules += other.schedules
        self.failed += other.failed
        self.by_kind.update(other.by_kind)
        self.events += other.events
        self.sim_time += other.sim_time
        self.acks += other.acks
        self.lost_async += other.lost_async

    def lines(self) -> list[str]:
        rate = self.schedules / self.seconds if self.seconds else 0.0
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.by_kind.items())) or "none"
        return [
            f"schedules: {self.schedules} in {self.seconds:.1f}s ({rate:.1f}/s); "
            f"simulated {self.sim_time / 3600:.1f} h, {self.events} steps, {self.acks} acknowledged commits",
            f"violations by kind: {kinds}; schedules with a violation: {len(self.failed)}"
            + (f" (seeds {self.failed[:10]})" if self.failed else ""),
            f"async acknowledged commits lost on failover (bounded by max_lag, not a violation): {self.lost_async}",
        ]


def run_many(seeds: range, config: SimConfig, steps: int = 600) -> Summary:
    summary = Summary()
    started = time.perf_counter()
    for seed in seeds:
        summary.add(run(seed, config, steps))
    summary.seconds = time.perf_counter() - started
    return summary
