"""Commit cost of pgkeel_fence: pgbench -N with and without the library, and how soon a passed deadline refuses.

    .venv/bin/python bench/fence_overhead.py [-T 10] [-c 1]

Starts a throwaway PostgreSQL 15 (as the postgres OS user when run as root) in a temp dir, runs
`pgbench -N` (simple-update: every transaction writes, so every commit meets the fence check) with
synchronous_commit on and off, first without the library, then preloaded with an armed lease.
Then it arms a deadline 0.5 s ahead and commits in a loop to see when the first refusal comes.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from pgkeel.instance.fence import FenceFile, boottime, extension_library
from pgkeel.instance.process import RunAs, run
from pgkeel.local.layout import free_port

BINDIR = Path("/usr/lib/postgresql/15/bin")
RUN_AS = RunAs.for_current_process()


def start(root: Path, port: int, preload: bool, sync: str) -> subprocess.Popen[bytes]:
    opts = {"port": str(port), "listen_addresses": "127.0.0.1", "unix_socket_directories": str(root),
            "synchronous_commit": sync}
    if preload:
        opts |= {"shared_preload_libraries": "pgkeel_fence", "pgkeel_fence.deadline_file": str(root / "fence")}
    argv = [str(BINDIR / "postgres"), "-D", str(root / "data")]
    for k, v in opts.items():
        argv += ["-c", f"{k}={v}"]
    with open(root / "postgres.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
                                **RUN_AS.kwargs())  # type: ignore[call-overload]
    limit = time.monotonic() + 30
    while time.monotonic() < limit:
        try:
            psycopg.connect(host=str(root), port=port, user="postgres", dbname="postgres").close()
            return proc
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise SystemExit(f"postgres did not start; see {root / 'postgres.log'}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)


def pgbench(root: Path, port: int, seconds: int, clients: int) -> tuple[float, float]:
    out = run([str(BINDIR / "pgbench"), "-h", str(root), "-p", str(port), "-U", "postgres", "-n", "-N",
               "-T", str(seconds), "-c", str(clients), "postgres"], run_as=RUN_AS, timeout=seconds + 60)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    return tps, latency


def time_to_refuse(root: Path, port: int, ff: FenceFile) -> tuple[float, float, int]:
    """(last accepted commit's start, first refusal's end) relative to the deadline, and commits tried."""
    with psycopg.connect(host=str(root), port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS fence_probe (x int)")
        deadline = boottime() + 0.5
        ff.arm_until(deadline)
        last_ok, n = float("-inf"), 0
        while True:
            started = boottime()
            n += 1
            try:
                conn.execute("INSERT INTO fence_probe VALUES (1)")
                last_ok = started
            except psycopg.errors.ReadOnlySqlTransaction:
                return last_ok - deadline, boottime() - deadline, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-T", type=int, default=10, help="seconds per pgbench run")
    parser.add_argument("-c", type=int, default=1, help="pgbench clients")
    parser.add_argument("--rounds", type=int, default=3, help="alternating with/without rounds (medians)")
    args = parser.parse_args()
    if extension_library(BINDIR) is None:
        raise SystemExit("pgkeel_fence.so is not installed: run scripts/build_fence.sh")
    root = Path(tempfile.mkdtemp(prefix="pgkeel-fence-bench-"))
    try:
        os.chmod(root, 0o755)
        RUN_AS.chown(root)
        run([str(BINDIR / "initdb"), "-D", str(root / "data"), "-U", "postgres", "-A", "trust", "--no-sync"],
            run_as=RUN_AS, timeout=120)
        ff = FenceFile.create(root / "fence")
        ff.arm_until(boottime() + 3600)
        port = free_port()
        proc = start(root, port, preload=False, sync="on")
        run([str(BINDIR / "pgbench"), "-h", str(root), "-p", str(port), "-U", "postgres", "-i", "-q", "-s", "1",
             "postgres"], run_as=RUN_AS, timeout=120)
        stop(proc)
        print(f"pgbench -N -T {args.T} -c {args.c}, {args.rounds} alternating rounds, medians; "
              "the fence check runs at every write commit")
        print(f"{'synchronous_commit':>18} {'library':>8} {'tps':>10} {'latency ms':>11}")
        for sync in ("on", "off"):
            runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for _ in range(args.rounds):
                for preload in (False, True):
                    proc = start(root, port, preload, sync)
                    try:
                        runs[preload].append(pgbench(root, port, args.T, args.c))
                    finally:
                        stop(proc)
            medians = {}
            for preload in (False, True):
                tps = statistics.median(r[0] for r in runs[preload])
                lat = statistics.median(r[1] for r in runs[preload])
                medians[preload] = lat
                print(f"{sync:>18} {'yes' if preload else 'no':>8} {tps:>10.1f} {lat:>11.3f}")
            print(f"{'':>18} {'delta':>8} {'':>10} {(medians[True] - medians[False]) * 1000:>+9.1f}µs")
        proc = start(root, port, preload=True, sync="off")
        try:
            last_ok, refused, n = time_to_refuse(root, port, ff)
        finally:
            stop(proc)
        print(f"deadline test ({n} commits): last accepted commit began {last_ok * 1000:+.3f} ms from the deadline, "
              f"first refusal returned {refused * 1000:+.3f} ms after it")
        ff.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
