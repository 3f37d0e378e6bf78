"""RPO of the WAL archive alone after a primary crash (issue 11): what a restore from the repository loses.

    nice -n 10 .venv/bin/python bench/archive_rpo.py [--trials 5] [--write-seconds 20]

Each trial is a fresh throwaway local 3-node cluster in /tmp with spec.backup on a volume repository beside
it (no schedules): `pgkeel backup now`, then a writer on the primary commits one row every ~10 ms
(autocommit, `INSERT … RETURNING clock_timestamp()`: the row carries its commit time, and after each
acknowledged commit it asks pg_current_wal_lsn()); after WRITE_SECONDS the primary's agent and postgres
(its whole process tree, archiver and archive-push included) are killed with SIGKILL and the repository is
copied at once (`cp -a`, before a standby can be promoted and archive more): that copy is what the archive
held at the crash. The newest backup is restored from the copy (PgBackRest.restore, target latest) into a
scratch directory, replayed and promoted with the drill's postgres (pgkeel.backup.drill), and read back:

- RPO seconds = commit time of the last acknowledged row − newest commit time among the recovered rows (no
  row recovered: − the first row's, a lower bound marked "≥"; the recovery point is then the backup's end);
- RPO bytes = pg_wal_lsn_diff(the last LSN asked before the crash, the copy's last replayed LSN);
- rows lost = acknowledged rows missing from the copy.

Prints a line per trial and the median; asserts nothing. archive_timeout (pgkeel renders 60s with
spec.backup) is shown: with a quiet primary it bounds the loss, since nothing is archived before a
segment fills or the timeout switches it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
import yaml

from pgkeel.backup import PgBackRest
from pgkeel.backup.drill import DrillSetup, drill_instance
from pgkeel.backup.engine import Target
from pgkeel.backup.replay import replay_until_promoted
from pgkeel.backup.scratch import prepare_scratch, remove_scratch
from pgkeel.instance.files import AGENT_SETTINGS, STANDBY_SIGNAL, drop_auto_conf_settings
from pgkeel.instance.process import RunAs
from pgkeel.lab.procs import signal_tree
from pgkeel.local import LocalCluster
from pgkeel.local.backups import config_file
from pgkeel.local.layout import chown_for_postgres

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 0.01  # the writer's pause between commits


def document(base: Path, repo: Path) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"]["name"] = "bench"
    doc["spec"]["resources"] = {"cpu": "1", "memory": "512Mi"}
    doc["spec"]["replication"] = {"mode": "quorum"}
    doc["spec"]["backup"] = {"repositories": [{"volume": {"path": str(repo)}}],
                             "schedule": {"full": None, "diff": None, "drill": None}}
    path = base / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class Writer:
    """Commits a row every INTERVAL on one server; keeps the last acknowledged row and the LSN asked after it."""

    dsn: str
    acked: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    last_lsn: str | None = None
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self._stop.is_set():
                    insert = "INSERT INTO rpo (at) VALUES (clock_timestamp()) RETURNING at"
                    at = conn.execute(insert).fetchone()[0]  # type: ignore[index]
                    self.acked += 1
                    self.first_at = self.first_at or at
                    self.last_at = at
                    self.last_lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
                    time.sleep(INTERVAL)
        except psycopg.Error as exc:
            self.error = type(exc).__name__

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def snapshot_conf(cluster: LocalCluster, snap: Path, work: Path) -> Path:
    """The cluster's pgbackrest.conf pointed at the repository's copy, with logs and locks of its own."""
    text = config_file(cluster.layout).read_text()
    for key, value in (("repo1-path", snap), ("log-path", work / "log"), ("lock-path", work / "lock")):
        text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.MULTILINE)
    for directory in (work, work / "log", work / "lock"):
        directory.mkdir(exist_ok=True)
        chown_for_postgres(directory)
    path = work / "pgbackrest.conf"
    path.write_text(text)
    os.chmod(path, 0o600)
    chown_for_postgres(path)
    return path


@dataclass(frozen=True)
class Trial:
    rpo_s: float
    rpo_bytes: int
    acked: int
    recovered: int
    written_s: float
    snapshot_s: float
    restore_s: float
    replay_s: float
    rpo_any_s: float | None  # last ack − the copy's last replayed commit of any transaction


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def kill_primary(cluster: LocalCluster) -> str:
    status = cluster.status()
    primary = next(m for m in status["members"] if m["name"] == status["leader"])
    os.kill(primary["agent_pid"], signal.SIGKILL)
    signal_tree(primary["postgres_pid"], signal.SIGKILL)
    return str(primary["name"])


def trial(number: int, args: argparse.Namespace) -> Trial:
    base = Path(tempfile.mkdtemp(prefix="pgkeel-bench-rpo-", dir="/tmp"))
    os.chmod(base, 0o755)  # the agents run as the postgres user
    repo = base / "repo"
    repo.mkdir()
    chown_for_postgres(repo)
    cluster = LocalCluster(base / "cluster")
    run_as = RunAs.for_current_process()
    scratch: Path | None = None
    try:
        cluster.up(document(base, repo), timeout=180)
        spec = cluster.cluster().spec
        stanza = cluster.cluster().name
        primary = cluster.status()["leader"]
        with psycopg.connect(cluster.node_dsn(primary), autocommit=True) as conn:
            conn.execute("CREATE TABLE rpo (id bigserial PRIMARY KEY, at timestamptz NOT NULL)")
            timeout = conn.execute("SHOW archive_timeout").fetchone()[0]  # type: ignore[index]
        if number == 1:
            print(f"archive_timeout = {timeout} (the primary's setting)", flush=True)
        done = subprocess.run([sys.executable, "-m", "pgkeel", "backup", "now", "--json", "--dir",
                               str(cluster.layout.root)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"backup now failed: {done.stdout}{done.stderr}")
        label = json.loads(done.stdout)["label"]

        writer = Writer(cluster.node_dsn(primary)).start()
        time.sleep(args.write_seconds)
        killed = kill_primary(cluster)
        crashed = time.monotonic()
        snap = base / "repo-at-crash"
        subprocess.run(["cp", "-a", str(repo), str(snap)], check=True)
        snapshot_s = time.monotonic() - crashed
        writer.stop()
        if writer.last_at is None or writer.first_at is None or writer.last_lsn is None:
            raise RuntimeError(f"the writer acknowledged nothing ({writer.error})")
        written_s = (writer.last_at - writer.first_at).total_seconds()
        conf = snapshot_conf(cluster, snap, base / "snap-backup")
        cluster.down(purge=True)  # the rest is read from the copy: free the CPUs

        scratch = prepare_scratch(base / "scratch", run_as)
        datadir = scratch / "data"
        datadir.mkdir(mode=0o700)
        run_as.chown(datadir)
        began = time.monotonic()
        PgBackRest(conf, stanza).restore(datadir, Target("latest"), None, archive_off=True)
        restore_s = time.monotonic() - began
        (datadir / STANDBY_SIGNAL).unlink(missing_ok=True)  # from a standby's backup: recover from the archive alone
        drop_auto_conf_settings(datadir, AGENT_SETTINGS)
        setup = DrillSetup(scratch=scratch, bindir=Path(spec.postgres.binaries), superuser=spec.users.superuser)
        inst = drill_instance(setup, scratch, run_as)
        began = time.monotonic()
        replay_until_promoted(inst, 600)
        replay_s = time.monotonic() - began
        try:
            count, newest = inst.query("SELECT count(*), max(at) FROM rpo")[0]
            lsn, replayed, lag = inst.query(
                "SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(), "
                "pg_wal_lsn_diff(%s, pg_last_wal_replay_lsn())::bigint", (writer.last_lsn,))[0]
        finally:
            inst.stop("immediate", timeout=30)
        # no row recovered: the copy ends before the first write (the RPO is at least the whole write)
        recovered_at = newest or writer.first_at
        result = Trial(rpo_s=(writer.last_at - recovered_at).total_seconds(), rpo_bytes=int(lag), acked=writer.acked,
                       recovered=int(count), written_s=written_s, snapshot_s=snapshot_s, restore_s=restore_s,
                       replay_s=replay_s,
                       rpo_any_s=(writer.last_at - replayed).total_seconds() if replayed else None)
        print(f"trial {number}/{args.trials}: RPO {result.rpo_s:6.2f} s{'' if newest else ' (no row recovered: ≥)'}  "
              f"{result.rpo_bytes} bytes of WAL  rows lost {result.acked - result.recovered}/{result.acked} "
              f"last replayed commit of any kind {fmt(result.rpo_any_s)} s before the last ack "
              f"(wrote {written_s:.1f} s, killed {killed}, backup {label}; crash LSN {writer.last_lsn}, "
              f"recovered to {lsn}; repository copied {snapshot_s:.2f} s after the kill; restore {restore_s:.1f} s, "
              f"replay+promote {replay_s:.1f} s)", flush=True)
        return result
    finally:
        if scratch is not None:
            with contextlib.suppress(Exception):
                remove_scratch(scratch)
        try:
            cluster.down(purge=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--write-seconds", type=float, default=20.0, help="how long the writer runs before the kill")
    args = parser.parse_args()
    results = [trial(n, args) for n in range(1, args.trials + 1)]
    rpo = [r.rpo_s for r in results]
    lost = [r.rpo_bytes for r in results]
    print(f"archive RPO after a primary kill ({args.trials} trials, fresh cluster each, writer every "
          f"{INTERVAL * 1000:.0f} ms for {args.write_seconds:g} s): median {statistics.median(rpo):.2f} s "
          f"(min {min(rpo):.2f}, max {max(rpo):.2f}); WAL not archived: median {statistics.median(lost):.0f} bytes "
          f"(min {min(lost)}, max {max(lost)}); rows lost median "
          f"{statistics.median(r.acked - r.recovered for r in results):.0f}")
    anyk = [r.rpo_any_s for r in results if r.rpo_any_s is not None]
    if anyk:
        print(f"last ack − the copy's last replayed commit of any transaction: median {statistics.median(anyk):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
