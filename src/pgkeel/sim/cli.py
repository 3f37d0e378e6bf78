"""What `pgkeel sim` prints: one seed's transcript, a named scenario, or figures over many seeds.

Invariant: the same arguments print the same thing (everything is seeded); a run with violations
prints each violating seed with the command line that replays it.
"""

from __future__ import annotations

from collections.abc import Callable

from pgkeel.ha.records import FenceKind
from pgkeel.ha.settings import Mode
from pgkeel.sim.runner import RunResult, Summary, config_for, run, run_many
from pgkeel.sim.scenarios import SCENARIOS


def describe(r: RunResult, transcript: bool) -> list[str]:
    lines = list(r.transcript) if transcript else []
    lines.append(
        f"seed {r.seed}: {r.events} steps, {r.sim_time:.0f}s simulated, {r.acks} acknowledged commits, "
        f"{r.split_windows} split-brain windows, {len(r.violations)} violations"
    )
    lines += [f"  {v.kind} at {v.t:.2f}s: {v.detail}" for v in r.violations]
    return lines


def main(
    seed: int | None,
    seeds: int,
    nodes: int,
    mode: str,
    fence: str,
    steps: int,
    transcript: bool,
    scenario: str | None,
    out: Callable[[str], None],
) -> int:
    """The process exit code: 1 when any violation was found."""
    if scenario is not None:
        if scenario not in SCENARIOS:
            out(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
            return 2
        r = SCENARIOS[scenario]()
        for line in describe(r, transcript):
            out(line)
        return 1 if r.violations else 0
    config = config_for(nodes, Mode(mode), FenceKind(fence))
    if seed is not None:
        r = run(seed, config, steps)
        for line in describe(r, transcript):
            out(line)
        return 1 if r.violations else 0
    summary: Summary = run_many(range(seeds), config, steps)
    for line in summary.lines():
        out(line)
    for s in summary.failed[:10]:
        flags = f"--nodes {nodes} --mode {mode} --fence {fence} --steps {steps}"
        out(f"  replay: pgkeel sim --seed {s} {flags} --transcript")
    return 1 if summary.failed else 0
