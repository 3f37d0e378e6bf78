"""Point-in-time recovery into a new local cluster (spec.bootstrap.fromBackup), before any agent starts.

The first member's data is restored into a staging directory beside PGDATA, replayed to the target
by a postgres of its own (socket only, no TLS, no fence, no synchronous standbys) until it
promotes, given this cluster's passwords, stopped cleanly and only then renamed to PGDATA, with
a marker beside it (`data.restored`). The record (bootstrap.json) says a restore happened, so it is
never done twice. The agents take it from there (rules bootstrap.restored / bootstrap.wait-restore):
the member with the marker claims the initialize key, takes the lease and records its system
identifier, the others never initdb and clone it. Targets no backup reaches are refused before
anything is restored; one recovery cannot reach stops the staging postgres.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pgkeel.backup import ConfPaths, PgBackRest, choose_backup, render_restore_conf, target_of
from pgkeel.backup.replay import ReplayError, replay_until_promoted, write_socket_auth
from pgkeel.document import PostgresCluster
from pgkeel.document.backup import FromBackup
from pgkeel.instance import Instance, InstanceConfig
from pgkeel.instance.files import AGENT_SETTINGS, STANDBY_SIGNAL, atomic_write, drop_auto_conf_settings
from pgkeel.local.backups import conf_paths
from pgkeel.local.layout import Layout, chown_for_postgres

RECORD = "bootstrap.json"
RECOVERY_SETTINGS = frozenset({
    "restore_command", "recovery_target", "recovery_target_time", "recovery_target_lsn", "recovery_target_name",
    "recovery_target_xid", "recovery_target_action", "recovery_target_inclusive", "recovery_target_timeline",
    "archive_mode",
})
RECOVERY_TIMEOUT = 3600.0
RESTORE_MARKER_SUFFIX = ".restored"  # pgkeel.instance.Instance.restore_marker: the agent founds the cluster on it
HOST = "127.0.0.1"


class RestoreError(RuntimeError):
    """The restore could not reach its target; nothing was started."""


def record_file(layout: Layout) -> Path:
    return layout.root / RECORD


def needs_restore(layout: Layout, cluster: PostgresCluster) -> bool:
    """The first member has no data, and no earlier restore made this cluster."""
    first = cluster.member_names()[0]
    return not (layout.node(first) / "data" / "PG_VERSION").exists() and not record_file(layout).exists()


def restore_engine(layout: Layout, cluster: PostgresCluster, source: FromBackup) -> PgBackRest:
    """pgBackRest on the source's repository and stanza, through etc/pgbackrest-restore.conf (0600)."""
    stanza = source.cluster_name or cluster.name
    paths: ConfPaths = conf_paths(layout)
    for directory in (paths.log_path.parent, paths.log_path, paths.lock_path):
        directory.mkdir(parents=True, exist_ok=True)
        chown_for_postgres(directory)
    conf = layout.etc / "pgbackrest-restore.conf"
    atomic_write(conf, render_restore_conf(stanza, source.repository, source.encryption, paths), mode=0o600)
    chown_for_postgres(conf)
    return PgBackRest(conf, stanza)


def staging_instance(layout: Layout, cluster: PostgresCluster, staging: Path) -> Instance:
    """A postgres for the first member's restored data, on its socket only, before any agent runs."""
    first = cluster.member_names()[0]
    node = layout.node(first)
    config = InstanceConfig(
        name=first,
        bindir=Path(cluster.spec.postgres.binaries),
        datadir=staging,
        config_file=layout.etc / "postgresql.conf",
        host=HOST,
        port=layout.load_state()["pg_ports"][first],
        socket_dir=node / "run",
        log_file=node / "restore.log",
        superuser=cluster.spec.users.superuser,
        replication_user=cluster.spec.users.replication,
        passfile=layout.passfile,
        superuser_password_file=layout.password_file("superuser"),
        replication_password_file=layout.password_file("replication"),
        # The node's certificate and the fence come with the agent; nothing waits for standbys here. The socket
        # only, and its own hba: we (root, or the user running up) act as the superuser to reset passwords.
        extra_options={"ssl": "off", "shared_preload_libraries": "", "synchronous_standby_names": "",
                       "listen_addresses": "", "hba_file": str(node / "restore-hba.conf"),
                       "ident_file": str(node / "restore-ident.conf")},
    )
    write_socket_auth(node / "restore-hba.conf", node / "restore-ident.conf", cluster.spec.users.superuser, "restore")
    return Instance(config)


def restore_first_member(layout: Layout, cluster: PostgresCluster, source: FromBackup) -> dict[str, Any]:
    """Restore, replay and promote the first member's data; the record written to bootstrap.json."""
    began = time.monotonic()
    engine = restore_engine(layout, cluster, source)
    target = target_of(source.target)
    chosen = choose_backup(engine.info(), target, datetime.now(UTC))  # TargetError before anything is written
    first = cluster.member_names()[0]
    datadir = layout.node(first) / "data"
    staging = layout.node(first) / "restore"  # only ever holds a copy from the repository
    staging.mkdir(mode=0o700, exist_ok=True)
    os.chmod(staging, 0o700)
    chown_for_postgres(staging)
    engine.restore(staging, target, chosen.label)
    # A backup copied from a standby brings its standby.signal, and any backup the source agent's
    # primary_conninfo: this postgres recovers from the archive alone, never from the source cluster.
    (staging / STANDBY_SIGNAL).unlink(missing_ok=True)
    drop_auto_conf_settings(staging, AGENT_SETTINGS)
    restored = time.monotonic()
    inst = staging_instance(layout, cluster, staging)
    try:
        lsn, timeline = replay_until_promoted(inst, RECOVERY_TIMEOUT)
    except ReplayError as exc:
        raise RestoreError(str(exc)) from None
    inst.create_replication_role()
    inst.set_superuser_password()
    inst.stop("fast")
    for name in ("restore-hba.conf", "restore-ident.conf"):
        (layout.node(first) / name).unlink(missing_ok=True)
    drop_auto_conf_settings(staging, RECOVERY_SETTINGS)
    # The marker first: data under PGDATA without it would look like a cluster whose store was lost.
    marker = datadir.with_name(datadir.name + RESTORE_MARKER_SUFFIX)
    atomic_write(marker, f"{chosen.label}\n", mode=0o644)
    chown_for_postgres(marker)
    if datadir.exists():
        datadir.rmdir()  # an empty directory only: needs_restore saw no PG_VERSION, rmdir refuses anything else
    staging.rename(datadir)
    record = {
        "from_backup": {"stanza": engine.stanza, "backup": chosen.label, "target": target.describe()},
        "recovered_lsn": lsn,
        "timeline": timeline,
        "restored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "restore_seconds": round(restored - began, 2),
        "replay_seconds": round(time.monotonic() - restored, 2),
    }
    atomic_write(record_file(layout), json.dumps(record, indent=1) + "\n", mode=0o644)
    return record
