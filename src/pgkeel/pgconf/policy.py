"""What the cluster needs from every node's postgresql.conf, and which user overrides would break it.

Required settings keep streaming replication, pg_rewind and failover working; the refusals say why
an override is dangerous so the user can choose a safe alternative.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pgkeel.document import PostgresCluster
from pgkeel.document.backup import PGBACKREST_CONF
from pgkeel.pgconf.values import Parsed

# Set at run time by the agent (postgresql.auto.conf or -c), so a value in the document would fight it.
AGENT_MANAGED = frozenset({
    "primary_conninfo", "primary_slot_name", "synchronous_standby_names", "recovery_target_timeline",
    "restore_command", "archive_cleanup_command", "recovery_end_command", "promote_trigger_file",
    "recovery_target", "recovery_target_name", "recovery_target_time", "recovery_target_xid",
    "recovery_target_lsn", "recovery_target_action", "recovery_target_inclusive",
})
NODE_SPECIFIC = frozenset({"port", "listen_addresses", "unix_socket_directories"})
FILES = frozenset({"data_directory", "config_file", "hba_file", "ident_file"})


@dataclass(frozen=True)
class Required:
    name: str
    value: str
    reason: str


def replication_senders(cluster: PostgresCluster) -> int:
    """One walsender/slot per other member, plus two for pg_basebackup and pg_rewind (and at least PG's 10)."""
    return max(10, cluster.spec.instances + 2)


def required_settings(cluster: PostgresCluster, config_dir: str) -> list[Required]:
    senders = replication_senders(cluster)
    need = cluster.spec.instances + 2
    out = [
        Required("listen_addresses", "*", "the agent narrows it per node with -c; replicas connect over TCP"),
        Required("port", "5432", "PostgreSQL's port; the agent sets it per node with -c on one machine"),
        Required("hba_file", f"{config_dir.rstrip('/')}/pg_hba.conf",
                 "pg_hba.conf next to postgresql.conf, identical on every node (seed)"),
        Required("cluster_name", cluster.metadata.name, "metadata.name: names the processes and log lines"),
        Required("wal_level", "replica", "streaming replication needs at least replica"),
        Required("wal_log_hints", "on", "pg_rewind needs it to rejoin an old primary"),
        Required("hot_standby", "on", "replicas answer read-only queries and health checks"),
        Required("max_wal_senders", str(senders),
                 f"instances + 2 = {need} (a sender per replica, spares for pg_basebackup/pg_rewind), at least 10"),
        Required("max_replication_slots", str(senders),
                 f"instances + 2 = {need} (a slot for every member on every member), at least 10"),
        Required("password_encryption", "scram-sha-256", "md5 password hashes are refused"),
        Required("wal_retrieve_retry_interval", "500ms",
                 "replicas reconnect within 0.5 s after their primary restarts or changes (default 5s); "
                 "quorum commits wait for that reconnect"),
    ]
    if cluster.spec.tls.enabled:
        out += [
            Required("ssl", "on", "spec.tls.enabled: clients and replicas connect over TLS (hostssl rules)"),
            Required("ssl_cert_file", "../tls/server.crt",
                     "each node's own certificate, beside its data directory (relative paths start at PGDATA), "
                     "issued by the cluster CA with the node's names"),
            Required("ssl_key_file", "../tls/server.key", "the certificate's key, mode 0600, owned by postgres"),
            Required("ssl_min_protocol_version", "TLSv1.2", "no TLS 1.0/1.1"),
        ]
    out += archive_settings(cluster, config_dir)
    if cluster.spec.replication.mode == "quorum":
        out.append(Required("synchronous_commit", "on",
                            "quorum mode: a commit returns only once a synchronous standby has flushed it"))
    return out


ARCHIVE_MANAGED = frozenset({"archive_mode", "archive_command", "archive_library"})


def pgbackrest_command(cluster: PostgresCluster, config_dir: str) -> str:
    """pgbackrest with the cluster's config and stanza: the same on every node."""
    return f"pgbackrest --config={config_dir.rstrip('/')}/{PGBACKREST_CONF} --stanza={cluster.metadata.name}"


def archive_settings(cluster: PostgresCluster, config_dir: str) -> list[Required]:
    """WAL archiving to spec.backup's repositories, identical on every node: only the primary archives
    (archive_mode = on), and a promoted standby archives its history file and the old timeline's
    partial segment. `$PWD`: the archiver and the startup process run in PGDATA, so the shell gives
    pgBackRest this node's data directory and an absolute path without a per-node setting."""
    if cluster.spec.backup is None:
        return []
    command = pgbackrest_command(cluster, config_dir)
    return [
        Required("archive_mode", "on", "spec.backup: the primary archives every WAL segment (a standby does not)"),
        Required("archive_command", f'{command} --pg1-path="$PWD" archive-push "$PWD/%p"',
                 "spec.backup: pgBackRest pushes each finished segment to every repository"),
        Required("restore_command", f'{command} --pg1-path="$PWD" archive-get %f "$PWD/%p"',
                 "spec.backup: a replica that fell behind the primary's WAL fetches it from the archive"),
        Required("archive_timeout", "60s",
                 "spec.backup: a quiet primary still archives at least once a minute, bounding what a lost node "
                 "takes with it"),
    ]


Guard = Callable[[PostgresCluster, Parsed], str | None]


def _refuse_values(values: set[str], reason: str) -> Guard:
    def check(_: PostgresCluster, parsed: Parsed) -> str | None:
        return reason if parsed.text in values else None

    return check


def _at_least_senders(name: str) -> Guard:
    def check(cluster: PostgresCluster, parsed: Parsed) -> str | None:
        need = cluster.spec.instances + 2
        if parsed.base is not None and parsed.base < need:
            return (
                f"{cluster.spec.instances} instances need at least instances + 2 = {need} "
                f"(one per replica plus pg_basebackup/pg_rewind); set {name} ≥ {need} or remove it"
            )
        return None

    return check


def _sync_commit(cluster: PostgresCluster, parsed: Parsed) -> str | None:
    if cluster.spec.replication.mode == "quorum" and parsed.text in ("off", "local"):
        return (
            f"synchronous_commit = {parsed.text} in quorum mode would lose acknowledged writes on failover "
            "(commits would not wait for a standby); use on, remote_write or remote_apply, "
            "or set spec.replication.mode: async"
        )
    return None


GUARDS: dict[str, Guard] = {
    "wal_level": _refuse_values({"minimal"}, "wal_level = minimal disables streaming replication; "
                                             "use replica or logical"),
    "hot_standby": _refuse_values({"off"}, "hot_standby = off makes replicas refuse the connections health checks and "
                                           "reads need; remove it"),
    "wal_log_hints": _refuse_values({"off"}, "wal_log_hints = off breaks pg_rewind, so an old primary could not "
                                             "rejoin; remove it"),
    "full_page_writes": _refuse_values({"off"}, "full_page_writes = off breaks pg_rewind and risks torn pages after a "
                                                "crash; remove it"),
    "fsync": _refuse_values({"off"}, "fsync = off can corrupt the data directory on a crash, and a corrupt primary "
                                     "replicates its damage; remove it"),
    "password_encryption": _refuse_values({"md5"}, "md5 password hashes are refused; use scram-sha-256"),
    "max_slot_wal_keep_size": _refuse_values({"-1"}, "-1 lets replication slots keep WAL without limit and fill "
                                                     "the volume; give a size or remove it"),
    "max_wal_senders": _at_least_senders("max_wal_senders"),
    "max_replication_slots": _at_least_senders("max_replication_slots"),
    "synchronous_commit": _sync_commit,
}


def refused_name(name: str) -> str | None:
    """Why a parameter may not appear in the document at all, or None."""
    if name in AGENT_MANAGED:
        return f"managed by the pgkeel agent at run time (postgresql.auto.conf); remove {name} from the document"
    if name in NODE_SPECIFIC:
        return f"set per node by the pgkeel agent (-c {name}=…) because it differs between nodes; remove it"
    if name in FILES:
        return f"pgkeel lays out the files ({name}); remove it"
    if name == "cluster_name":
        return "set from metadata.name; rename the cluster instead"
    return None


TLS_MANAGED = frozenset({"ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"})


def guard(cluster: PostgresCluster, name: str, parsed: Parsed) -> str | None:
    if name in TLS_MANAGED and cluster.spec.tls.enabled:
        return (
            f"{name} is managed by spec.tls (each node's certificate is issued by the cluster CA); remove it, "
            "or set spec.tls.enabled: false to manage TLS yourself"
        )
    if name in ARCHIVE_MANAGED and cluster.spec.backup is not None:
        return f"{name} is managed by spec.backup (pgBackRest archives WAL); remove it"
    check = GUARDS.get(name)
    if check is None:
        return None
    # _refuse_values compares canonical text; -1 may be written as "-1" or -1.
    if name == "max_slot_wal_keep_size" and parsed.base is not None and parsed.base < 0:
        return check(cluster, Parsed("-1", parsed.base))
    return check(cluster, parsed)
