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
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pgkeel.lab.workload import steady_writer
from pgkeel.local import LocalCluster
from pgkeel.local.rolling import RollingRestart

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 0.02  # the writer's pause between commits


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
        writer = steady_writer("rolling-rw", cluster.dsn(True), INTERVAL)
        time.sleep(1)
        try:
            for trial in range(1, args.trials + 1):
                before = cluster.status()["leader"]
                rolling = RollingRestart(cluster, say=lambda _: None, progress=lambda _: None)
                start = time.monotonic()
                steps = rolling.run(rolling.plan())
                end = time.monotonic()
                time.sleep(1)
                gap = writer.longest_gap(start - 1, end + 1)
                outages.append(gap)
                switchovers.append(sum(s.step.kind == "switchover" for s in steps))
                print(f"trial {trial}/{args.trials}: outage {gap:.3f} s  rolling restart {end - start:.1f} s  "
                      f"leader {before} → {cluster.status()['leader']}  switchovers {switchovers[-1]}", flush=True)
        finally:
            writer.stop()
            writer.join(timeout=30)
        print(f"write outage ({args.mode}, {args.trials} trials): median {statistics.median(outages):.3f} s  "
              f"min {min(outages):.3f} s  max {max(outages):.3f} s; switchovers per restart {set(switchovers)}; "
              f"writer errors {writer.errors}")
        return 0
    finally:
        cluster.down(purge=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
