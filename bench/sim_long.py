"""Long simulation run: ≥ 100,000 seeded fault schedules over every configuration, split over processes.

    .venv/bin/python bench/sim_long.py [--schedules 100000] [--workers 2] [--steps 300]

Prints per-configuration figures (schedules/s, violations by kind, the first violating seeds with the
command that replays each) and a total. Deterministic: the same arguments give the same figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import time

from pgkeel.ha.records import FenceKind
from pgkeel.ha.settings import Mode
from pgkeel.sim.runner import Summary, config_for, run_many

CONFIGS: list[tuple[int, Mode, FenceKind, float]] = [  # nodes, mode, fence, share of the schedules
    (3, Mode.QUORUM, FenceKind.EXTENSION, 0.3),
    (3, Mode.ASYNC, FenceKind.EXTENSION, 0.2),
    (5, Mode.QUORUM, FenceKind.EXTENSION, 0.2),
    (5, Mode.ASYNC, FenceKind.EXTENSION, 0.1),
    (3, Mode.QUORUM, FenceKind.WATCHDOG, 0.1),
    (3, Mode.ASYNC, FenceKind.NONE, 0.05),
    (1, Mode.QUORUM, FenceKind.EXTENSION, 0.05),
]
CHUNK = 200


def chunk(args: tuple[int, str, str, int, int, int]) -> Summary:
    nodes, mode, fence, start, stop, steps = args
    return run_many(range(start, stop), config_for(nodes, Mode(mode), FenceKind(fence)), steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    per_config: list[list[tuple[int, str, str, int, int, int]]] = []
    for nodes, mode, fence, share in CONFIGS:
        count = int(args.schedules * share)
        per_config.append(
            [(nodes, str(mode), str(fence), s, min(s + CHUNK, count), args.steps) for s in range(0, count, CHUNK)]
        )
    # interleaved, so that a run stopped part-way has still covered every configuration in proportion
    jobs = [job for batch in itertools.zip_longest(*per_config) for job in batch if job is not None]
    started = time.perf_counter()
    totals: dict[tuple[int, str, str], Summary] = {}
    with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
        done = violating = 0
        planned = sum(stop - start for _, _, _, start, stop, _ in jobs)
        for job, summary in zip(jobs, pool.map(chunk, jobs), strict=True):
            totals.setdefault(job[:3], Summary()).merge(summary)
            done += summary.schedules
            violating += len(summary.failed)
            if done % (10 * CHUNK) < CHUNK or done == planned:  # a sign of life every ~2,000 schedules
                print(f"progress: {done}/{planned} schedules, {violating} with a violation, "
                      f"{time.perf_counter() - started:.0f}s", flush=True)
            for seed in sorted(summary.failed):
                print(f"violation: pgkeel sim --seed {seed} --nodes {job[0]} --mode {job[1]} --fence {job[2]} "
                      f"--steps {args.steps} --transcript", flush=True)
    elapsed = time.perf_counter() - started
    grand = Summary()
    for (nodes, mode, fence), summary in totals.items():
        summary.seconds = elapsed
        grand.merge(summary)
        print(f"== {nodes} nodes, {mode}, fence {fence}")
        for line in summary.lines()[1:]:
            print("  " + line)
        for seed in sorted(summary.failed)[:5]:
            flags = f"--nodes {nodes} --mode {mode} --fence {fence} --steps {args.steps}"
            print(f"  replay: pgkeel sim --seed {seed} {flags} --transcript")
    grand.seconds = elapsed
    print("== total")
    for line in grand.lines():
        print("  " + line)


if __name__ == "__main__":
    main()
