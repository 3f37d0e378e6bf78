"""The full reliability run behind docs/RELIABILITY.md, and the tables made from it.

    python -m pgkeel.lab.fullrun run OUTDIR [--trials 20] [--new-trials N] [--fault F ...] [--mode M ...]
    python -m pgkeel.lab.fullrun table OUTDIR

`run` calls `pgkeel bench failover --fault F --mode M --trials N --json OUTDIR/F-M.json` for every
fault in both modes, one after another (one lab at a time), appending their output to OUTDIR/run.log;
a fault/mode whose JSON already holds N trials is skipped, so an interrupted run resumes.
`--new-trials` gives the faults added with the long-fault issue (NEW_FAULTS) fewer trials.
`table` prints the markdown tables of docs/RELIABILITY.md from those JSON files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pgkeel.lab.faults import FAULTS, shape

MODES = ("quorum", "async")
NEW_FAULTS = ("kill-primary-and-replica", "absent-replica", "kill-bootstrap")


def _path(out: Path, fault: str, mode: str) -> Path:
    return out / f"{fault}-{mode}.json"


def _trials_done(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["trials"])
    except (OSError, ValueError, KeyError):
        return 0


def _machine() -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "cpu": cpu,
        "nproc": cmd("nproc"),
        "kernel": platform.release(),
        "postgres": cmd("/usr/lib/postgresql/15/bin/postgres", "--version"),
        "etcd": cmd("etcd", "--version").splitlines()[0] if cmd("etcd", "--version") else "",
    }


def run(out: Path, trials: int, new_trials: int, faults: list[str], modes: list[str], code: str = "") -> int:
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "run.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    meta["machine"] = _machine()
    meta["code"] = code or meta.get("code", "")
    meta["pgkeel"] = str(Path(__file__).resolve().parents[1])
    meta["plan"] = {f: new_trials if f in NEW_FAULTS else trials for f in faults}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    failures = 0
    with open(out / "run.log", "a") as log:
        for fault in faults:
            n = new_trials if fault in NEW_FAULTS else trials
            for mode in modes:
                target = _path(out, fault, mode)
                if _trials_done(target) >= n:
                    continue
                started = time.monotonic()
                print(f"== {time.strftime('%H:%M:%S')} {fault} {mode} {n} trials", file=log, flush=True)
                argv = [sys.executable, "-m", "pgkeel", "bench", "failover", "--fault", fault, "--mode", mode]
                argv += ["--trials", str(n), "--json", str(target)]
                rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT).returncode
                failures += rc != 0
                took = time.monotonic() - started
                print(f"== {fault} {mode}: rc {rc}, {took / 60:.1f} min", file=log, flush=True)
                meta.setdefault("durations_s", {})[f"{fault}-{mode}"] = round(took, 1)
                meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return failures


# --- tables ------------------------------------------------------------------------------------------


def _s(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _mpm(stat: dict[str, Any]) -> str:
    """median / p90 / max."""
    if stat.get("median") is None:
        return "–"
    return f"{_s(stat['median'])} / {_s(stat.get('p90'))} / {_s(stat['max'])}"


def load(directory: Path) -> list[dict[str, Any]]:
    found = []
    for fault in FAULTS:
        for mode in MODES:
            path = _path(directory, fault, mode)
            if path.exists():
                found.append(json.loads(path.read_text()))
    return found


def main_table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| fault | mode | nodes | trials | write outage s (median / p90 / max) | any-writer gap s (median / max) "
        "| new primary s (median / max) | split-brain windows | lost acks | rejoin s (median / p90 / max) "
        "| failed trials |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in runs:
        s = d["stats"]
        gap = s.get("outage_any_s") or {}
        gap_text = "–" if gap.get("median") is None else f"{_s(gap['median'])} / {_s(gap['max'])}"
        promote = s["promote_s"]
        promote_text = "–" if promote.get("median") is None else f"{_s(promote['median'])} / {_s(promote['max'])}"
        failed = d.get("failed_trials", sum(t.get("error") is not None for t in d["trials"]))
        nodes = d.get("instances", shape(d["fault"]).instances)
        lines.append(
            f"| {d['fault']} | {d['mode']} | {nodes} | {len(d['trials'])} | {_mpm(s['outage_s'])} | {gap_text} "
            f"| {promote_text} | {d['split_brain_windows_total']} | {d['lost_acked_total']} | {_mpm(s['rejoin_s'])} "
            f"| {failed} |"
        )
    return "\n".join(lines)


def _absent_figures(trials: list[dict[str, Any]]) -> str:
    done = [t for t in trials if t["details"].get("wal_written_bytes")]
    if not done:
        return "no trial completed"
    mib = [t["details"]["wal_written_bytes"] / 2**20 for t in done]
    absent = [t["details"].get("absent_s") or 0.0 for t in done]
    lost = sum(
        t["details"].get("slot_wal_status") == "lost" or bool(t["details"].get("slot_lost_logged")) for t in done
    )
    recloned = sum("follow.reclone" in (t["details"].get("rules") or {}).get(t["details"]["replica"], []) for t in done)
    aside = sum(bool(t["details"].get("aside")) for t in done)
    reported = sum(t["details"].get("aside") in (t["details"].get("asides_reported") or []) for t in done)
    within = sum(t.get("rejoin_s") is not None and t["rejoin_s"] <= 60 for t in trials)
    limit = done[0]["details"].get("max_slot_wal_keep_size", "?")
    return (
        f"WAL written while absent {min(mib):.0f}–{max(mib):.0f} MiB (max_slot_wal_keep_size {limit}), absent "
        f"{min(absent):.0f}–{max(absent):.0f} s; slot lost in {lost}; re-cloned (`[follow.reclone]`) in {recloned}; "
        f"streaming again ≤ 60 s after the restart in "
        f"{within}; aside copy kept in {aside} and listed in its /status `asides` in {reported}"
    )


def _bootstrap_figures(trials: list[dict[str, Any]]) -> str:
    parts = []
    for long_dead in (True, False):
        group = [t for t in trials if (t["details"].get("dead_s", 0) >= 60) == long_dead and "victim" in t["details"]]
        if not group:
            continue
        up = sorted(t["promote_s"] for t in group if t.get("promote_s") is not None)
        ok = sum(t.get("error") is None for t in group)
        label = "past the claim timeout" if long_dead else "past the lease only"
        parts.append(
            f"dead {group[0]['details']['dead_s']:.0f} s ({label}): {ok}/{len(group)} came up, kill → first primary "
            f"median {_s(up[len(up) // 2] if up else None, 1)} s, max {_s(up[-1] if up else None, 1)} s"
        )
    if not parts:
        return "no trial completed"
    asides = sum(any((t["details"].get("asides") or {}).values()) for t in trials)
    return "; ".join(parts) + f"; trials that left an aside copy: {asides}"


def _kill_agent_figures(trials: list[dict[str, Any]]) -> str:
    done = [t for t in trials if "restore_after_s" in t["details"]]
    if not done:
        return "no trial completed"
    promoted = sum(bool(t["details"].get("promoted_while_dead")) for t in done)
    rewound = sum("follow.rewind" in (t["details"].get("rules") or {}).get(t["old_primary"], []) for t in done)
    dead = min(t["details"]["restore_after_s"] for t in done)
    return (
        f"agent dead ≥ {dead:.0f} s; a new primary while it was dead in {promoted}; the old primary rejoined "
        f"through pg_rewind (`[follow.rewind]` in its log) in {rewound}"
    )


FIGURES = {
    "absent-replica": _absent_figures,
    "kill-bootstrap": _bootstrap_figures,
    "kill-agent": _kill_agent_figures,
}


def fault_table(runs: list[dict[str, Any]]) -> str:
    """The long faults' own figures, per fault and mode."""
    lines = ["| fault | mode | trials | figures |", "|---|---|---|---|"]
    for d in runs:
        figures = FIGURES.get(d["fault"])
        if figures is not None:
            trials = [t for t in d["trials"] if t.get("details") is not None]
            lines.append(f"| {d['fault']} | {d['mode']} | {len(d['trials'])} | {figures(trials)} |")
    return "\n".join(lines)


def failures(runs: list[dict[str, Any]]) -> str:
    lines = []
    for d in runs:
        for i, t in enumerate(d["trials"], start=1):
            if t.get("error") or t.get("lost_acked") or t.get("split_brain_windows"):
                lines.append(
                    f"- {d['fault']} {d['mode']} trial {i}: error {t.get('error')!r}, lost acks {t.get('lost_acked')}, "
                    f"split-brain windows {t.get('split_brain_windows')}"
                )
    return "\n".join(lines) or "- none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgkeel.lab.fullrun")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--trials", type=int, default=20)
    r.add_argument("--new-trials", type=int, default=None)
    r.add_argument("--fault", action="append", choices=FAULTS)
    r.add_argument("--mode", action="append", choices=MODES)
    r.add_argument("--code", default="", help="What code ran (e.g. the git commit), kept in OUTDIR/run.json.")
    t = sub.add_parser("table")
    t.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        new = args.new_trials if args.new_trials is not None else args.trials
        failed = run(args.out, args.trials, new, args.fault or list(FAULTS), args.mode or list(MODES), args.code)
        return 1 if failed else 0
    runs = load(args.out)
    print(main_table(runs))
    print()
    print(fault_table(runs))
    print()
    print(failures(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
