"""Pure judgements over the writers' logs, the final table and the status monitor's samples.

No I/O here, so every rule is unit-tested (tests/unit/lab). Times are time.monotonic() seconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pgkeel.lab.workload import Attempt


@dataclass(frozen=True)
class Window:
    """Two nodes both acknowledged writes during [start, end]."""

    a: str
    b: str
    start: float
    end: float


@dataclass(frozen=True)
class Sample:
    """One poll of one node's /status: None fields when the node did not answer."""

    t: float
    node: str
    role: str | None
    is_leader: bool
    leader: str | None
    streaming: bool
    dcs_ok: bool = True


def lost_acked(attempts: Iterable[Attempt], final: set[int]) -> list[int]:
    """Ids whose commit returned cleanly but that the final primary does not hold."""
    return sorted(a.id for a in attempts if a.outcome == "ack" and a.id not in final)


def phantoms(attempts: Iterable[Attempt], final: set[int]) -> list[int]:
    """Ids on the final primary that no writer ever attempted."""
    return sorted(final - {a.id for a in attempts})


def ack_intervals(attempts: Iterable[Attempt]) -> dict[str, tuple[float, float]]:
    """Per answering server: first and last acknowledgement (indeterminate commits count: they were accepted)."""
    spans: dict[str, tuple[float, float]] = {}
    for a in attempts:
        if a.outcome == "fail" or a.node is None:
            continue
        first, last = spans.get(a.node, (a.t_done, a.t_done))
        spans[a.node] = (min(first, a.t_done), max(last, a.t_done))
    return spans


def split_brain_windows(attempts: Iterable[Attempt]) -> list[Window]:
    """Pairs of servers whose acknowledgement intervals overlap: both accepted writes at the same time.

    A trial holds one change of primary at most, so a correct run gives each server one interval
    and the intervals are disjoint: the old primary's last ack precedes the new one's first.
    """
    spans = sorted(ack_intervals(attempts).items(), key=lambda kv: kv[1][0])
    windows = []
    for i, (a, (a0, a1)) in enumerate(spans):
        for b, (b0, b1) in spans[i + 1 :]:
            start, end = max(a0, b0), min(a1, b1)
            if start < end:
                windows.append(Window(a, b, start, end))
    return windows


def outage(attempts: Sequence[Attempt], t_fault: float, writer: str | None = "rw") -> float | None:
    """Longest gap between consecutive acks of `writer` (None: of any writer), from the last ack
    before the fault on.

    None when the writer never acknowledged anything after the fault (the trial then failed).
    """
    acks = sorted(a.t_done for a in attempts if writer in (None, a.writer) and a.outcome != "fail")
    before = [t for t in acks if t <= t_fault]
    after = [t for t in acks if t > t_fault]
    if not after:
        return None
    series = ([before[-1]] if before else [t_fault]) + after
    return max(b - a for a, b in itertools.pairwise(series))


def detection(samples: Iterable[Sample], old_primary: str, t_fault: float) -> float | None:
    """Seconds from the fault until a surviving node, reading the store, first sees the old leader gone.

    A node that cannot read the store also reports no leader; that is not a detection.
    """
    for s in sorted(samples, key=lambda s: s.t):
        if s.t > t_fault and s.node != old_primary and s.role is not None and s.dcs_ok and s.leader != old_primary:
            return s.t - t_fault
    return None


def promotion(samples: Iterable[Sample], old_primary: str, t_fault: float) -> tuple[str, float] | None:
    """The first node other than the old primary to report itself leading primary, and when."""
    for s in sorted(samples, key=lambda s: s.t):
        if s.t > t_fault and s.node != old_primary and s.role == "primary" and s.is_leader:
            return s.node, s.t - t_fault
    return None


def summary(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median, min, max of the values present (None when none are)."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return {"median": None, "min": None, "max": None}
    n = len(present)
    median = present[n // 2] if n % 2 else (present[n // 2 - 1] + present[n // 2]) / 2
    return {"median": median, "min": present[0], "max": present[-1]}


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of the values present: p90 of 20 trials is the 18th smallest."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    rank = max(1, math.ceil(q * len(present)))
    return present[rank - 1]


def distribution(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """summary() plus p90 and how many values were present (what the reliability table prints)."""
    return {**summary(values), "p90": percentile(values, 0.9), "n": sum(v is not None for v in values)}
