"""Backup and restore throughput of a local 3-node cluster against `cp -a` of a data directory (issue 11).

    nice -n 10 .venv/bin/python bench/backup_throughput.py [--scale 135] [--keep]

Starts a throwaway local cluster in /tmp with spec.backup on a volume repository beside it (no schedules),
loads a pgbench database (`pgbench -i -s SCALE`, ~15 MiB per scale unit: 135 ≈ 2 GiB), then measures:

- `pgkeel backup now --type full` (queued for the leader's agent, copied from a streaming replica; the CLI
  waits): wall time, MiB/s of the backed-up size, the repository's size;
- `cp -a` of that replica's PGDATA (running, nothing stopped) to a directory on the same disk, and the fsync
  of the copied files after it (pgBackRest syncs what it writes; cp does not);
- `pgbackrest restore` of the backup into an empty directory (pgkeel.backup.PgBackRest.restore);
- a restore drill (`pgkeel backup verify`): its duration and checks.

Prints a table; asserts nothing. The cluster and every directory are removed afterwards, on failure too,
unless --keep. Page cache is not dropped (the machine is shared): reads of a just-loaded database mostly
come from memory, for the backup and `cp -a` alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

from pgkeel.backup.engine import Target
from pgkeel.local import LocalCluster
from pgkeel.local.backups import engine
from pgkeel.local.layout import chown_for_postgres

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


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


def pgkeel(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "pgkeel", *args, "--json", "--dir", str(cluster.layout.root)],
                          capture_output=True, text=True, timeout=6 * 3600)
    if done.returncode != 0 and not done.stdout.strip().startswith("{"):
        raise RuntimeError(f"pgkeel {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def du(path: Path, exclude: str | None = None) -> int:
    """Bytes of the regular files under path (apparent sizes, like pgBackRest's); `exclude`: a top-level entry."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        if exclude is not None and Path(dirpath) == path and exclude in dirnames:
            dirnames.remove(exclude)
        for name in filenames:
            file = Path(dirpath) / name
            if file.is_file() and not file.is_symlink():
                total += file.stat().st_size
    return total


def rate(size: int, seconds: float) -> str:
    return f"{size / MiB / seconds:8.1f}" if seconds > 0 else "       -"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=135, help="pgbench scale factor (135 ≈ 2 GiB)")
    parser.add_argument("--keep", action="store_true", help="keep the cluster and directories for inspection")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pgkeel-bench-backup-", dir="/tmp"))
    os.chmod(base, 0o755)  # the agents run as the postgres user
    repo = base / "repo"
    repo.mkdir()
    chown_for_postgres(repo)
    cluster = LocalCluster(base / "cluster")
    rows: list[tuple[str, float, int, str]] = []
    try:
        began = time.monotonic()
        cluster.up(document(base, repo), timeout=180)
        print(f"cluster up in {time.monotonic() - began:.1f} s ({base})", flush=True)

        began = time.monotonic()
        subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), cluster.dsn()], check=True,
                       capture_output=True, text=True)
        load_s = time.monotonic() - began
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            db_size = int(conn.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()[0])  # type: ignore[index]
            conn.execute("CHECKPOINT")
        print(f"pgbench -i -s {args.scale}: {load_s:.1f} s, databases {db_size / MiB:.0f} MiB", flush=True)
        rows.append((f"pgbench -i -s {args.scale} (load, quorum commit)", load_s, db_size, "databases"))

        began = time.monotonic()
        run = pgkeel(cluster, "backup", "now", "--type", "full")
        backup_s = time.monotonic() - began
        backup = run["backup"]
        print(f"backup now: {backup_s:.1f} s, {backup['label']} from {run['source']} (primary {run['primary']})",
              flush=True)
        rows.append((f"pgkeel backup now --type full (from {run['source']})", backup_s, int(backup["size"]),
                     "backed up"))
        repo_size = du(repo)

        source = cluster.layout.node(run["source"]) / "data"
        copy = base / "cp-copy"
        began = time.monotonic()
        subprocess.run(["cp", "-a", str(source), str(copy)], check=True)
        cp_s = time.monotonic() - began
        copied = du(copy)
        began = time.monotonic()
        subprocess.run(f"find {copy} -type f -print0 | xargs -0 sync -d", shell=True, check=True)
        sync_s = time.monotonic() - began
        print(f"cp -a {run['source']}/data: {cp_s:.1f} s ({copied / MiB:.0f} MiB), sync of its files {sync_s:.1f} s",
              flush=True)
        rows.append((f"cp -a of {run['source']}'s PGDATA", cp_s, copied, "copied"))
        rows.append(("cp -a, then fsync of every copied file", cp_s + sync_s, copied, "copied"))
        wal = du(copy / "pg_wal")
        shutil.rmtree(copy)

        target = base / "restore" / "data"
        target.mkdir(parents=True, mode=0o700)
        chown_for_postgres(target.parent)
        chown_for_postgres(target)
        began = time.monotonic()
        engine(cluster.layout, cluster.cluster()).restore(target, Target("latest"), backup["label"], archive_off=True)
        restore_s = time.monotonic() - began
        restored = du(target)
        print(f"pgbackrest restore: {restore_s:.1f} s ({restored / MiB:.0f} MiB)", flush=True)
        rows.append(("pgbackrest restore into an empty directory", restore_s, restored, "restored"))
        shutil.rmtree(target.parent)

        began = time.monotonic()
        drill = pgkeel(cluster, "backup", "verify")
        drill_s = time.monotonic() - began
        rows.append((f"pgkeel backup verify (drill, {'GREEN' if drill['ok'] else 'RED'})", drill_s,
                     int(backup["size"]), "backed up"))

        print()
        print(f"{'operation':<52} {'seconds':>8} {'MiB':>8} {'MiB/s':>8} {'db MiB/s':>8}  MiB are")
        for name, seconds, size, what in rows:
            print(f"{name:<52} {seconds:8.1f} {size / MiB:8.0f} {rate(size, seconds)} {rate(db_size, seconds)}  {what}")
        print()
        print(f"databases {db_size / MiB:.0f} MiB; backup {backup['label']}: "
              f"size {int(backup['size']) / MiB:.0f} MiB, stored {int(backup['repo_size']) / MiB:.0f} MiB "
              f"(repository on disk, with WAL: {repo_size / MiB:.0f} MiB); "
              f"the copied PGDATA had {wal / MiB:.0f} MiB of pg_wal")
        print(f"backup vs cp -a: {backup_s / cp_s:.2f}x the time; restore vs cp -a + fsync: "
              f"{restore_s / (cp_s + sync_s):.2f}x")
        print(f"drill: {drill['duration_s']} s by the agent ({drill_s:.1f} s with the CLI), ok={drill['ok']}")
        for check in drill["checks"]:
            print(f"  {check['name']:<12} {'ok' if check['ok'] else 'FAILED'}  {check['detail']}")
        if drill.get("error"):
            print(f"  error: {drill['error']}")
        return 0
    finally:
        if args.keep:
            print(f"kept: {base} (pgkeel down --purge --dir {cluster.layout.root}; rm -rf {base})")
        else:
            try:
                cluster.down(purge=True)
            finally:
                shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
