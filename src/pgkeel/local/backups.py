"""Backups of a local cluster: its pgbackrest.conf, and `backup now` from a streaming replica or the primary.

The config is written by `up` (prepare) beside postgresql.conf, 0600 and owned by postgres since it
carries the repositories' secrets. A backup creates the stanza when it does not exist, copies
from a streaming replica when spec.backup.fromStandby and one is healthy, and expires what the
retention no longer keeps only after the backup succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgkeel.backup import BackupSet, BackupType, ConfPaths, PgBackRest, PgHost, render_conf
from pgkeel.document import PostgresCluster
from pgkeel.document.backup import PGBACKREST_CONF
from pgkeel.instance.files import atomic_write
from pgkeel.local.layout import Layout, chown_for_postgres


class NoBackupConfigured(ValueError):
    """The cluster's document has no spec.backup."""


def conf_paths(layout: Layout) -> ConfPaths:
    return ConfPaths(log_path=layout.root / "backup" / "log", lock_path=layout.root / "backup" / "lock")


def config_file(layout: Layout) -> Path:
    return layout.etc / PGBACKREST_CONF


def write_config(layout: Layout, cluster: PostgresCluster) -> None:
    """etc/pgbackrest.conf for spec.backup (0600, owned by postgres), and its log and lock directories."""
    if cluster.spec.backup is None:
        return
    paths = conf_paths(layout)
    for directory in (paths.log_path.parent, paths.log_path, paths.lock_path):
        directory.mkdir(parents=True, exist_ok=True)
        chown_for_postgres(directory)
    text = render_conf(cluster.name, cluster.spec.backup, paths, cluster.spec.archive_backlog_bytes)
    atomic_write(config_file(layout), text, mode=0o600)
    chown_for_postgres(config_file(layout))


def engine(layout: Layout, cluster: PostgresCluster) -> PgBackRest:
    if cluster.spec.backup is None:
        raise NoBackupConfigured(
            "spec.backup is not set: add spec.backup.repositories (e.g. [{volume: {path: /var/lib/pgbackrest}}]) "
            f"to {layout.document} and run `pgkeel up` to apply it"
        )
    return PgBackRest(config_file(layout), cluster.name)


def pg_host(layout: Layout, cluster: PostgresCluster, name: str) -> PgHost:
    port = layout.load_state()["pg_ports"][name]
    node = layout.node(name)
    return PgHost(node / "data", port, node / "run", cluster.spec.users.superuser)


@dataclass(frozen=True)
class BackupRun:
    """What `backup now` did."""

    backup: BackupSet
    source: str  # the member files were copied from
    primary: str
    stanza_created: bool

    def as_dict(self) -> dict[str, Any]:
        return {"backup": self.backup.as_dict(), "source": self.source, "primary": self.primary,
                "stanza_created": self.stanza_created}


def choose_source(status: dict[str, Any], from_standby: bool) -> tuple[str, str | None]:
    """(primary, streaming replica to copy from or None), from LocalCluster.status(); ValueError without a primary."""
    members = status["members"]
    primary = next((m["name"] for m in members if m["role"] == "primary" and m["name"] == status["leader"]), None)
    if primary is None:
        raise ValueError("no primary is running: a backup needs one (start the cluster with `pgkeel up`)")
    replica = next((m["name"] for m in members if m["role"] == "replica" and m["state"] == "streaming"), None)
    return primary, replica if from_standby else None


def backup_now(layout: Layout, cluster: PostgresCluster, status: dict[str, Any], kind: BackupType) -> BackupRun:
    """Create the stanza if needed, back up, then expire per retention; BackupError with pgBackRest's reason."""
    bk = engine(layout, cluster)
    assert cluster.spec.backup is not None  # engine() refused otherwise
    primary, replica = choose_source(status, cluster.spec.backup.from_standby)
    primary_host = pg_host(layout, cluster, primary)
    created = bk.ensure_stanza(primary_host)
    standby_host = pg_host(layout, cluster, replica) if replica else None
    made = bk.backup(kind, primary_host, standby_host)
    bk.expire()
    return BackupRun(made, replica or primary, primary, created)
