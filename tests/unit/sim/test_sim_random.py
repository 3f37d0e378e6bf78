"""Seeded random fault schedules against the real rules: zero violations, or a known rule bug (xfail).

Budget: about 200 schedules of 30 s of faults plus the quiet tail; `pgkeel sim --seeds N` and
bench/sim_long.py run more.
"""

from __future__ import annotations

from pgkeel.ha.records import FenceKind
from pgkeel.ha.settings import Mode
from pgkeel.sim.runner import config_for, run_many

STEPS = 300


def check(seeds: range, nodes: int, mode: Mode, fence: FenceKind = FenceKind.EXTENSION) -> None:
    summary = run_many(seeds, config_for(nodes, mode, fence), STEPS)
    assert not summary.failed, "\n".join(summary.lines())


def test_async_three_nodes() -> None:
    check(range(60), 3, Mode.ASYNC)


def test_async_five_nodes() -> None:
    check(range(20), 5, Mode.ASYNC)


def test_single_node() -> None:
    check(range(20), 1, Mode.QUORUM)


def test_quorum_three_nodes() -> None:
    check(range(80), 3, Mode.QUORUM)


def test_quorum_five_nodes() -> None:
    check(range(20), 5, Mode.QUORUM)


def test_watchdog_fence_three_nodes() -> None:
    check(range(20), 3, Mode.QUORUM, FenceKind.WATCHDOG)


# Seeds the long runs (bench/sim_long.py) found, each failing before the fix named beside it.
FOUND: list[tuple[int, Mode, FenceKind, int, str]] = [
    (3, Mode.QUORUM, FenceKind.EXTENSION, 5512, "lost ack: behind_me needs the sync member detached"),
    (3, Mode.QUORUM, FenceKind.EXTENSION, 12556, "lost ack: behind_me needs the sync member detached"),
    (3, Mode.QUORUM, FenceKind.EXTENSION, 11605, "deadlock: one last-leader test for self and peers"),
    (3, Mode.QUORUM, FenceKind.WATCHDOG, 8906, "lost ack: AcquireLeader sent 16 s after a frozen node observed"),
    (3, Mode.QUORUM, FenceKind.EXTENSION, 15797, "checker: both modes wait for the timeline the last leader served"),
    (3, Mode.ASYNC, FenceKind.NONE, 286, "checker: an unfenced, frozen old leader is waited for by design"),
]


def test_seeds_found_by_long_runs() -> None:
    for nodes, mode, fence, seed, why in FOUND:
        summary = run_many(range(seed, seed + 1), config_for(nodes, mode, fence), STEPS)
        assert not summary.failed, f"seed {seed} ({why}):\n" + "\n".join(summary.lines())
