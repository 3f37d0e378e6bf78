"""Write outage of a rolling restart (`pgkeel restart`) on a local 3-node cluster.

    .venv/bin/python bench/rolling_restart.py [--trials 5] [--mode quorum|async]

Starts a throwaway local cluster in /tmp (removed after, also on failure), runs a writer that
commits one row every 20 ms through the multi-host read-write DSN, and does TRIALS rolling
restarts of every member (replicas one at a time, one switchover, the old primary). The outage of
a trial is the longest gap between two successful commits while it ran. Prints a line per trial
and median/min/max; asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import yaml

from pgkeel.local import LocalCluster
from pgkeel.local.rolling import RollingRestart

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 0.02


class Writer:
    """One INSERT every 20 ms; the monotonic time of every successful commit."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.commits: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_rolling (id bigserial PRIMARY KEY, at timestamptz)")
        self._thread.start()
        return self

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                conn.execute("INSERT INTO bench_rolling (at) VALUES (now())")
                self.commits.append(time.monotonic())
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(INTERVAL)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def longest_gap(self, start: float, end: float) -> float:
        during = [t for t in self.commits if start - 1 <= t <= end + 1]
        return max((b - a for a, b in itertools.pairwise(during)), default=float("nan"))


def document(base: Path, mode: str) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"]["name"] = "bench"
    doc["spec"]["resources"] = {"cpu": "1", "memory": "512Mi"}
    doc["spec"]["replication"] = {"mode": mode}
    path = base / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--mode", choices=("quorum", "async"), default="quorum")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pgkeel-bench-rolling-", dir="/tmp"))
    os.chmod(base, 0o755)  # the agents run as the postgres user
    cluster = LocalCluster(base / "cluster")
    outages, switchovers = [], []
    try:
        cluster.up(document(base, args.mode), timeout=120)
        writer = Writer(cluster.dsn(True)).start()
        time.sleep(1)
        try:
            for trial in range(1, args.trials + 1):
                before = cluster.status()["leader"]
                rolling = RollingRestart(cluster, say=lambda _: None, progress=lambda _: None)
                start = time.monotonic()
                steps = rolling.run(rolling.plan())
                end = time.monotonic()
                time.sleep(1)
                gap = writer.longest_gap(start, end)
                outages.append(gap)
                switchovers.append(sum(s.step.kind == "switchover" for s in steps))
                print(f"trial {trial}/{args.trials}: outage {gap:.3f} s  rolling restart {end - start:.1f} s  "
                      f"leader {before} → {cluster.status()['leader']}  switchovers {switchovers[-1]}", flush=True)
        finally:
            writer.stop()
        print(f"write outage ({args.mode}, {args.trials} trials): median {statistics.median(outages):.3f} s  "
              f"min {min(outages):.3f} s  max {max(outages):.3f} s; switchovers per restart {set(switchovers)}; "
              f"writer errors {writer.errors}")
        return 0
    finally:
        cluster.down(purge=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
