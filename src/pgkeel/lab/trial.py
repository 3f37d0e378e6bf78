"""One trial = healthy cluster, steady writers, one fault, recovery, then the checks.

A bench run starts one fresh lab cluster (namespaces, etcd, agents) and runs its trials on it
one after another; each trial begins only once the cluster is healthy again (`fresh=True`
builds a new cluster for every trial instead).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgkeel.lab import checks
from pgkeel.lab.cluster import LabCluster, Timings
from pgkeel.lab.faults import FAULTS, inject
from pgkeel.lab.monitor import Monitor
from pgkeel.lab.workload import Workload, final_ids, prepare_table

WARMUP_S = 1.5
SETTLE_S = 1.0
REJOIN_BOUND_S = 60.0


@dataclass
class TrialResult:
    fault: str
    mode: str
    old_primary: str
    new_primary: str | None
    outage_s: float | None
    detect_s: float | None
    promote_s: float | None
    rejoin_s: float | None
    lost_acked: int
    phantoms: int
    split_brain_windows: int
    indeterminate: int
    acked: int
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _wait_rejoined(lab: LabCluster, since: float) -> float | None:
    """Seconds from `since` until every member is back and streaming (checked no earlier than 1 s on,
    so a snapshot taken before the agents noticed the fault cannot count)."""
    earliest = since + 2 * lab.timings.loop_wait
    deadline = since + REJOIN_BOUND_S
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= earliest and lab.healthy():
            return now - since
        time.sleep(0.1)
    return None


def run_trial(lab: LabCluster, fault: str) -> TrialResult:
    primary = lab.wait_healthy(REJOIN_BOUND_S)
    prepare_table(lab.conninfo())
    workload = Workload(lab.conninfo(), {n: lab.conninfo([n], read_write=False) for n in lab.names})
    monitor = Monitor(lab)
    monitor.start()
    workload.start()
    error = None
    t_restored = None
    try:
        time.sleep(WARMUP_S)
        t_fault = time.monotonic()
        inject(fault, lab, monitor, primary, t_fault)
        t_restored = time.monotonic()
        rejoin = _wait_rejoined(lab, t_restored)
        if rejoin is None:
            error = f"not all members streaming within {REJOIN_BOUND_S:g}s of the restore"
        time.sleep(SETTLE_S)
    finally:
        attempts = workload.stop()
        samples = monitor.stop()
    final_primary = lab.wait_healthy(REJOIN_BOUND_S)
    final = final_ids(lab.conninfo([final_primary], read_write=False))
    promoted = checks.promotion(samples, primary, t_fault)
    lost = checks.lost_acked(attempts, final)
    extra = checks.phantoms(attempts, final)
    windows = checks.split_brain_windows(attempts)
    return TrialResult(
        fault=fault,
        mode=lab.mode,
        old_primary=primary,
        new_primary=final_primary,
        outage_s=checks.outage(attempts, t_fault),
        detect_s=checks.detection(samples, primary, t_fault),
        promote_s=promoted[1] if promoted else None,
        rejoin_s=rejoin,
        lost_acked=len(lost),
        phantoms=len(extra),
        split_brain_windows=len(windows),
        indeterminate=sum(a.outcome == "indeterminate" for a in attempts),
        acked=sum(a.outcome == "ack" for a in attempts),
        error=error,
        details={
            "lost_ids": lost[:20],
            "phantom_ids": extra[:20],
            "windows": [asdict(w) for w in windows],
            "restore_after_s": (t_restored - t_fault) if t_restored else None,
        },
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_bench(
    fault: str,
    mode: str,
    trials: int,
    timings: Timings | None = None,
    fresh: bool = False,
    progress: Callable[[int, TrialResult], None] | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
    results: list[TrialResult] = []
    lab: LabCluster | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # so `finally` tears the lab down on kill
    try:
        for n in range(trials):
            if lab is None:
                lab = LabCluster(mode, timings=timings or Timings(), keep=keep).__enter__()
            try:
                result = run_trial(lab, fault)
            except BaseException:
                lab.keep = True  # leave the agents' and postgres' logs for the post-mortem
                print(f"trial failed; logs kept in {lab.root}", file=sys.stderr)
                raise
            results.append(result)
            if progress:
                progress(n + 1, result)
            if fresh:
                lab.close()
                lab = None
    finally:
        if lab is not None:
            lab.close()
        signal.signal(signal.SIGTERM, previous)
    return report(fault, mode, results)


def report(fault: str, mode: str, results: list[TrialResult]) -> dict[str, Any]:
    stats = {
        key: checks.summary([getattr(r, key) for r in results])
        for key in ("outage_s", "detect_s", "promote_s", "rejoin_s")
    }
    return {
        "fault": fault,
        "mode": mode,
        "trials": [r.public() for r in results],
        "median_outage_s": stats["outage_s"]["median"],
        "lost_acked_total": sum(r.lost_acked for r in results),
        "split_brain_windows_total": sum(r.split_brain_windows for r in results),
        "phantoms_total": sum(r.phantoms for r in results),
        "rejoin_failures": sum(r.rejoin_s is None for r in results),
        "stats": stats,
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")
