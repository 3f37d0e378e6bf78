"""The Kubernetes latency test at length: three pods, a writer, the fake API at p99 1 s with a 3 s stall every 30 s.

The CI-sized run (70 s) is tests/integration/k8s/test_api_habits.py; this runs the same test for
`--seconds` (default 600, the issue's 10 minutes) and prints its figures: leader changes, lease
transitions, fences, refused writes, the longest write gap, and the p50/p99 of request time in the
fake. It reuses the test rather than copying it, so the two never measure different things.
Needs root and PostgreSQL 15, like the test. Not run in CI: the test skips without the variable.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/integration/k8s/test_api_habits.py::test_bench_latency_long"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the latency profile runs")
    args = parser.parse_args()
    env = {**os.environ, "PGKEEL_BENCH_K8S_LATENCY": str(args.seconds)}
    timeout = str(int(args.seconds) + 300)  # pyproject's 300 s per test would cut a 10-minute run
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", f"--timeout={timeout}", TEST]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
