"""Backups of a local cluster: its pgbackrest.conf, and the engine `backup list|info` read the repository with.

The config is written by `up` (prepare) beside postgresql.conf, 0600 and owned by postgres since it
carries the repositories' secrets. Backups themselves, scheduled or `backup now`, are run by the
leader's agent (pgkeel.agent.backups), never by the CLI, so two never run at once.
"""

from __future__ import annotations

from pathlib import Path

from pgkeel.backup import ConfPaths, PgBackRest, PgHost, render_conf
from pgkeel.document import PostgresCluster
from pgkeel.document.backup import PGBACKREST_CONF
from pgkeel.instance.files import atomic_write
from pgkeel.local.layout import Layout, chown_for_postgres


class NoBackupConfigured(ValueError):
    """The cluster's document has no spec.backup."""


def conf_paths(layout: Layout) -> ConfPaths:
    return ConfPaths(log_path=layout.root / "backup" / "log", lock_path=layout.root / "backup" / "lock")


def drill_scratch(layout: Layout) -> Path:
    """Where a restore drill puts its throwaway copy: under the cluster root, never beside a member's data."""
    return layout.root / "backup" / "drill"


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
