"""One trial = healthy cluster, steady writers, one fault, recovery, then the checks.

A bench run starts one fresh lab cluster (namespaces, etcd, agents) of the shape its fault needs
(pgkeel.lab.faults.SHAPES) and runs its trials on it one after another; each trial begins only
once the cluster is healthy again (`fresh=True` builds a new cluster for every trial instead).
`kill-bootstrap` is different: every trial builds its own cluster, since the fault hits its bootstrap.
A trial that raises is recorded as failed (its lab kept for the post-mortem) and the next trial
gets a fresh cluster.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgkeel.lab import checks
from pgkeel.lab.cluster import LabCluster, Timings
from pgkeel.lab.faults import (
    BOOTSTRAP_DEAD_S,
    BOOTSTRAP_KILL_JITTER_S,
    BOOTSTRAP_SHORT_DEAD_S,
    FAILOVER_FAULTS,
    FAULTS,
    inject,
    operator_cleanup,
    shape,
    verify,
)
from pgkeel.lab.monitor import Monitor
from pgkeel.lab.workload import Attempt, Workload, final_ids, prepare_table

WARMUP_S = 1.5
SETTLE_S = 1.0
REJOIN_BOUND_S = 60.0
BOOTSTRAP_WRITES_S = 3.0  # writers run this long on a freshly bootstrapped cluster
STAT_KEYS = ("outage_s", "outage_any_s", "detect_s", "promote_s", "rejoin_s")


@dataclass
class TrialResult:
    fault: str
    mode: str
    old_primary: str | None
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
    outage_any_s: float | None = None  # the same gap over every writer's acks: when *some* node took writes

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _wait_rejoined(lab: LabCluster, since: float, problems: list[str]) -> float | None:
    """Seconds from `since` until every member is back and streaming (checked no earlier than 1 s on,
    so a snapshot taken before the agents noticed the fault cannot count). None, with the reason in
    `problems`, after REJOIN_BOUND_S or as soon as a node refuses to join (a state only an operator ends)."""
    earliest = since + 2 * lab.timings.loop_wait
    deadline = since + REJOIN_BOUND_S
    while time.monotonic() < deadline:
        now = time.monotonic()
        snap = lab.snapshot()
        refused = {n: s["refused"] for n, s in snap.items() if s and s.get("refused")}
        if refused:
            problems.append(f"refused to join (needs an operator): {refused}")
            return None
        if now >= earliest and lab.healthy(snap):
            return now - since
        time.sleep(0.1)
    problems.append(f"not all members streaming within {REJOIN_BOUND_S:g}s of the restore")
    return None


def fence_kinds(lab: LabCluster) -> dict[str, str | None]:
    """What fences each node's commits (extension | watchdog | none): a lab without pgkeel_fence measures
    a degraded cluster, and says so."""
    out: dict[str, str | None] = {}
    for name, snap in lab.snapshot().items():
        out[name] = ((snap or {}).get("fence") or {}).get("kind")
    return out


def _judge(
    fault: str,
    lab: LabCluster,
    attempts: list[Attempt],
    final: set[int],
    *,
    old_primary: str | None,
    final_primary: str | None,
    promoted: tuple[str, float] | None,
    outage_s: float | None,
    outage_any_s: float | None,
    detect_s: float | None,
    rejoin_s: float | None,
    problems: list[str],
    details: dict[str, Any],
) -> TrialResult:
    lost = checks.lost_acked(attempts, final)
    extra = checks.phantoms(attempts, final)
    windows = checks.split_brain_windows(attempts)
    return TrialResult(
        fault=fault,
        mode=lab.mode,
        old_primary=old_primary,
        new_primary=final_primary,
        outage_s=outage_s,
        detect_s=detect_s,
        promote_s=promoted[1] if promoted else None,
        rejoin_s=rejoin_s,
        lost_acked=len(lost),
        phantoms=len(extra),
        split_brain_windows=len(windows),
        indeterminate=sum(a.outcome == "indeterminate" for a in attempts),
        acked=sum(a.outcome == "ack" for a in attempts),
        error="; ".join(problems) or None,
        details={
            "lost_ids": lost[:20],
            "phantom_ids": extra[:20],
            "windows": [asdict(w) for w in windows],
        }
        | details,
        outage_any_s=outage_any_s,
    )


def run_trial(lab: LabCluster, fault: str) -> TrialResult:
    if shape(fault).own_cluster:
        raise ValueError(f"{fault} builds its own cluster: use run_bootstrap_trial")
    primary = lab.wait_healthy(REJOIN_BOUND_S)
    problems: list[str] = []
    details: dict[str, Any] = {"fence": fence_kinds(lab)}
    details["sync_standby_names"] = ((lab.fetch(primary) or {}).get("postgres") or {}).get("sync_standby_names")
    if any(kind != "extension" for kind in details["fence"].values()):
        problems.append(f"lease fence degraded (pgkeel_fence not loaded): {details['fence']}")
    offsets = lab.log_offsets()
    prepare_table(lab.conninfo())
    workload = Workload(lab.conninfo(), {n: lab.conninfo([n], read_write=False) for n in lab.names})
    monitor = Monitor(lab)
    monitor.start()
    workload.start()
    t_restored = None
    rejoin = None
    try:
        time.sleep(WARMUP_S)
        t_fault = time.monotonic()
        inject(fault, lab, monitor, primary, t_fault, details)
        t_restored = time.monotonic()
        rejoin = _wait_rejoined(lab, t_restored, problems)
        time.sleep(SETTLE_S)
    finally:
        attempts = workload.stop()
        samples = monitor.stop()
    final_primary = lab.wait_healthy(REJOIN_BOUND_S)
    final = final_ids(lab.conninfo([final_primary], read_write=False))
    promoted = checks.promotion(samples, primary, t_fault)
    details["rules"] = lab.rules_since(offsets)
    details["outcome"] = "failover" if promoted else "same primary"
    details["old_primary"] = primary
    if fault in FAILOVER_FAULTS and promoted is None:
        problems.append(f"no other node took over from {primary}")
    problems += verify(fault, lab, details, offsets)
    details["restore_after_s"] = t_restored - t_fault
    details["rw_after_fault"] = _by_node(a for a in attempts if a.writer == "rw" and a.t_send > t_fault)
    result = _judge(
        fault,
        lab,
        attempts,
        final,
        old_primary=primary,
        final_primary=final_primary,
        promoted=promoted,
        outage_s=checks.outage(attempts, t_fault),
        outage_any_s=checks.outage(attempts, t_fault, writer=None),
        detect_s=checks.detection(samples, primary, t_fault),
        rejoin_s=rejoin,
        problems=problems,
        details=details,
    )
    operator_cleanup(fault, lab, details)
    return result


def _by_node(attempts: Iterable[Attempt]) -> dict[str, dict[str, int]]:
    """Outcome counts per answering server: where the multi-host client's attempts went."""
    out: dict[str, dict[str, int]] = {}
    for a in attempts:
        counts = out.setdefault(a.node or "-", {})
        counts[a.outcome] = counts.get(a.outcome, 0) + 1
    return out


def _wait_logged(lab: LabCluster, needle: str, timeout: float) -> str:
    """The first node whose agent.log contains `needle` (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in lab.names:
            try:
                if needle in lab.agent_log(name).read_text(errors="replace"):
                    return name
            except OSError:
                continue
        time.sleep(0.01)
    raise TimeoutError(f"no agent logged {needle!r} within {timeout:g}s; see {lab.root}/nodes/*/agent.log")


def bootstrap_lab(mode: str, timings: Timings | None = None, keep: bool = False) -> LabCluster:
    """A lab cluster for kill-bootstrap: network, etcd and configs ready, no agent started yet."""
    return LabCluster(mode, timings=timings or Timings(), keep=keep, start_agents=False)


def run_bootstrap_trial(
    lab: LabCluster,
    dead_s: float = BOOTSTRAP_DEAD_S,
    jitter_s: float = BOOTSTRAP_KILL_JITTER_S,
    after_initdb: bool = False,
) -> TrialResult:
    """kill-bootstrap on a `bootstrap_lab()` (entered): start every agent, SIGKILL the one that logs
    `[bootstrap.initdb]` (its initdb dies with it) at a random moment up to `jitter_s` later (so kills
    land before, inside and just after initdb; `jitter_s=0`: at once) or, with `after_initdb`, as soon
    as initdb has written pg_control (the data directory has a system identifier); keep it dead for
    `dead_s` (default: past the claim timeout), start it again.

    The cluster must come up: one primary, every member streaming within REJOIN_BOUND_S of the restart,
    one system identifier, at most one aside copy per node; then writers run on it for a few seconds.
    promote_s is kill → first leading primary (the cluster becomes writable); rejoin_s restart → healthy.
    """
    if lab.agents:
        raise ValueError("kill-bootstrap needs a lab whose agents have not started: use bootstrap_lab()")
    return _bootstrap_trial(lab, dead_s, jitter_s, after_initdb)


def _bootstrap_trial(lab: LabCluster, dead_s: float, jitter_s: float, after_initdb: bool) -> TrialResult:
    problems: list[str] = []
    delay = 0.0 if after_initdb else random.uniform(0.0, jitter_s)
    details: dict[str, Any] = {"dead_s": dead_s, "kill_delay_s": delay, "kill_after_initdb": after_initdb}
    monitor = Monitor(lab)
    monitor.start()
    try:
        t_start = time.monotonic()
        for name in lab.names:
            lab.start_agent(name)
        victim = _wait_logged(lab, "[bootstrap.initdb]", timeout=60)
        if after_initdb:
            control = lab.datadir(victim) / "global" / "pg_control"
            deadline = time.monotonic() + 30
            while not control.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        time.sleep(delay)
        lab.kill_agent(victim)
        t_fault = time.monotonic()
        datadir = lab.datadir(victim)
        details |= {
            "victim": victim,
            "killed_after_s": t_fault - t_start,
            "victim_data_at_kill": sorted(p.name for p in datadir.iterdir()) if datadir.exists() else None,
            "victim_postgres_at_kill": lab.postgres_pid(victim) is not None,
        }
        time.sleep(dead_s)
        lab.start_agent(victim)
        t_restored = time.monotonic()
        rejoin = _wait_rejoined(lab, t_restored, problems)
    finally:
        samples = monitor.stop()
    final_primary = lab.wait_healthy(REJOIN_BOUND_S) if rejoin is not None else lab.primary()
    first_leader = next((s for s in samples if s.t > t_fault and s.role == "primary" and s.is_leader), None)
    promoted = (first_leader.node, first_leader.t - t_fault) if first_leader else None
    snap = lab.snapshot()
    sysids = {n: ((s or {}).get("postgres") or {}).get("system_identifier") for n, s in snap.items()}
    details["system_identifiers"] = sysids
    if len(set(sysids.values())) != 1:
        problems.append(f"members disagree on the system identifier: {sysids}")
    details["asides"] = {n: [a.get("path") for a in (s or {}).get("asides") or []] for n, s in snap.items()}
    many = {n: paths for n, paths in details["asides"].items() if len(paths) > 1}
    if many:
        problems.append(f"more than one aside copy: {many}")
    # the cluster serves writes: a few seconds of the usual writers (on whatever came up)
    attempts: list[Attempt] = []
    final: set[int] = set()
    if final_primary is None:
        problems.append("no primary")
    else:
        prepare_table(lab.conninfo())
        workload = Workload(lab.conninfo(), {n: lab.conninfo([n], read_write=False) for n in lab.names})
        workload.start()
        time.sleep(BOOTSTRAP_WRITES_S)
        attempts = workload.stop()
        final = final_ids(lab.conninfo([final_primary], read_write=False))
        if not any(a.outcome == "ack" for a in attempts):
            problems.append("the bootstrapped cluster acknowledged no write")
    details["rules"] = lab.rules_since(dict.fromkeys(lab.names, 0))
    details["restore_after_s"] = t_restored - t_fault
    return _judge(
        "kill-bootstrap",
        lab,
        attempts,
        final,
        old_primary=victim,
        final_primary=final_primary,
        promoted=promoted,
        outage_s=None,
        outage_any_s=None,
        detect_s=None,
        rejoin_s=rejoin,
        problems=problems,
        details=details,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _failed(fault: str, mode: str, exc: BaseException, lab_root: Path | None) -> TrialResult:
    where = f"; logs kept in {lab_root}" if lab_root else ""
    return TrialResult(
        fault=fault,
        mode=mode,
        old_primary=None,
        new_primary=None,
        outage_s=None,
        detect_s=None,
        promote_s=None,
        rejoin_s=None,
        lost_acked=0,
        phantoms=0,
        split_brain_windows=0,
        indeterminate=0,
        acked=0,
        error=f"trial raised {type(exc).__name__}: {exc}{where}",
        details={"traceback": traceback.format_exc(limit=8)},
    )


def run_bench(
    fault: str,
    mode: str,
    trials: int,
    timings: Timings | None = None,
    fresh: bool = False,
    progress: Callable[[int, TrialResult], None] | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    form = shape(fault)  # raises on an unknown fault
    results: list[TrialResult] = []
    lab: LabCluster | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)  # so `finally` tears the lab down on kill
    try:
        for n in range(trials):
            if form.own_cluster:
                fresh_lab = bootstrap_lab(mode, timings, keep=keep)
                with fresh_lab:
                    try:
                        # alternately past the claim timeout and past the lease only
                        dead = BOOTSTRAP_DEAD_S if n % 2 == 0 else BOOTSTRAP_SHORT_DEAD_S
                        result = run_bootstrap_trial(fresh_lab, dead_s=dead)
                    except Exception as exc:
                        fresh_lab.keep = True
                        print(f"trial failed; logs kept in {fresh_lab.root}", file=sys.stderr)
                        result = _failed(fault, mode, exc, fresh_lab.root)
            else:
                if lab is None:
                    lab = LabCluster(
                        mode, instances=form.instances, timings=timings or Timings(), keep=keep, storage=form.storage
                    ).__enter__()
                try:
                    result = run_trial(lab, fault)
                except Exception as exc:
                    lab.keep = True  # leave the agents' and postgres' logs for the post-mortem
                    print(f"trial failed; logs kept in {lab.root}", file=sys.stderr)
                    result = _failed(fault, mode, exc, lab.root)
                    lab.close()
                    lab = None
            results.append(result)
            if progress:
                progress(n + 1, result)
            if fresh and lab is not None:
                lab.close()
                lab = None
    finally:
        if lab is not None:
            lab.close()
        signal.signal(signal.SIGTERM, previous)
    return report(fault, mode, results)


def report(fault: str, mode: str, results: list[TrialResult]) -> dict[str, Any]:
    stats = {key: checks.distribution([getattr(r, key) for r in results]) for key in STAT_KEYS}
    form = shape(fault)
    return {
        "fault": fault,
        "mode": mode,
        "instances": form.instances,
        "storage": form.storage,
        "trials": [r.public() for r in results],
        "median_outage_s": stats["outage_s"]["median"],
        "lost_acked_total": sum(r.lost_acked for r in results),
        "split_brain_windows_total": sum(r.split_brain_windows for r in results),
        "phantoms_total": sum(r.phantoms for r in results),
        "rejoin_failures": sum(r.rejoin_s is None for r in results),
        "failed_trials": sum(r.error is not None for r in results),
        "stats": stats,
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


__all__ = [
    "FAULTS",
    "REJOIN_BOUND_S",
    "TrialResult",
    "bootstrap_lab",
    "report",
    "run_bench",
    "run_bootstrap_trial",
    "run_trial",
]
