"""spec.backup for one member on its own machine: its pgbackrest.conf and the agent's backup job.

As with `pgkeel up`, the config is written beside postgresql.conf (DIR/conf/pgbackrest.conf, 0600, owned by the
user the agent runs as) with the secrets copied from the 0600 files the document names, which must be on this
machine and readable by that user. The job knows only this member's postgres: a standby's files are on another
machine, so the leader backs up from its own primary; a `volume` repository must be storage every machine mounts
at the same path (whichever member is primary archives into it).
"""

from __future__ import annotations

from pathlib import Path

from pgkeel.backup import ConfPaths, render_conf
from pgkeel.backup.job import BackupHost, BackupJob
from pgkeel.document import PostgresCluster
from pgkeel.document.backup import PGBACKREST_CONF
from pgkeel.instance.files import atomic_write
from pgkeel.pgconf.member_dir import MemberDir


def conf_paths(base: Path) -> ConfPaths:
    return ConfPaths(log_path=base / "backup" / "log", lock_path=base / "backup" / "lock")


def backup_job(cluster: PostgresCluster, member: str, paths: MemberDir, config_dir: Path) -> BackupJob | None:
    """spec.backup's schedules, run by whichever member leads, from its own primary (hosts: only itself)."""
    spec = cluster.spec.backup
    if spec is None:
        return None
    own = cluster.member_spec(member)
    host = BackupHost(datadir=paths.datadir, port=own.pg_port, socket_dir=paths.run)
    return BackupJob(config_file=config_dir / PGBACKREST_CONF, stanza=cluster.name, full=spec.schedule.full,
                     diff=spec.schedule.diff, drill=spec.schedule.drill, drill_scratch=paths.base / "backup" / "drill",
                     bindir=Path(cluster.spec.postgres.binaries), from_standby=False, hosts={member: host})


def write_config(cluster: PostgresCluster, base: Path, config_dir: Path) -> None:
    """CONFIG_DIR/pgbackrest.conf (0600: it holds the secrets) and pgBackRest's log and lock directories;
    SecretFileError naming the document field when a secret file is missing or too open."""
    if cluster.spec.backup is None:
        return
    paths = conf_paths(base)
    text = render_conf(cluster.name, cluster.spec.backup, paths, cluster.spec.archive_backlog_bytes)
    for directory in (paths.log_path, paths.lock_path):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(config_dir / PGBACKREST_CONF, text, mode=0o600)
