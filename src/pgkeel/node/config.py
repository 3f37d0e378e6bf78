"""`pgkeel node run`: everything one member's agent needs, derived from the document and its bundle.

Nothing here is configured by hand: names, addresses and ports come from the member's entry in
`spec.members`, the store from `spec.store.etcd`, secrets from the bundle (`node.bundle`), and the
directories from one base directory (default /var/lib/pgkeel/<cluster>, Debian's place for state):

    DIR/data       PGDATA                      DIR/conf   postgresql.conf, pg_hba.conf (rendered here)
    DIR/tls        server.crt/.key → bundle    DIR/run    socket directory, fence deadline file
    DIR/postgres.log, DIR/.pgpass (0600), DIR/agent.lock (one agent per member and machine)
    DIR/conf/pgbackrest.conf (0600, with spec.backup), DIR/backup/{log,lock,drill} (node.backups)

The API serves HTTPS with the member's certificate on its host (and plain HTTP on 127.0.0.1 only),
so it never listens beyond loopback without TLS; mutating calls need the bundle's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pgkeel.agent.from_env import write_passfile
from pgkeel.dcs import EtcdAccess
from pgkeel.document import PostgresCluster
from pgkeel.ha.config import AgentConfig
from pgkeel.instance.files import atomic_write
from pgkeel.node import backups
from pgkeel.node.bundle import Bundle, BundleError, member_names_for_certificate
from pgkeel.pgconf import render_config
from pgkeel.pgconf.member_dir import MemberDir

DEFAULT_BASE = Path("/var/lib/pgkeel")
DEFAULT_SECRETS = Path("/etc/pgkeel")


class NodeError(ValueError):
    """The document, the member or the machine cannot run this member; the message names the fix."""


@dataclass(frozen=True)
class NodePaths(MemberDir):
    """Where one member keeps its state on its machine: a MemberDir (data, tls, run, postgres.log) and
    what only a member on its own machine has there."""

    @classmethod
    def default(cls, cluster: str, base: Path | None = None) -> NodePaths:
        return cls(base if base is not None else DEFAULT_BASE / cluster)

    @property
    def conf(self) -> Path:
        return self.base / "conf"

    @property
    def passfile(self) -> Path:
        return self.base / ".pgpass"

    @property
    def lock(self) -> Path:
        return self.base / "agent.lock"


def default_bundle_dir(cluster: str) -> Path:
    """Where `secrets init`'s DIR/<member> is copied on the machine (see docs/multi-machine.md)."""
    return DEFAULT_SECRETS / cluster


def etcd_access(cluster: PostgresCluster) -> EtcdAccess | None:
    etcd = cluster.spec.store.etcd
    if etcd is None:
        return None
    tls, auth = etcd.tls, etcd.auth
    return EtcdAccess(
        ca_file=Path(tls.ca) if tls else None,
        cert_file=Path(tls.cert) if tls and tls.cert else None,
        key_file=Path(tls.key) if tls and tls.key else None,
        user=auth.user if auth else None,
        password_file=Path(auth.password_file) if auth else None,
    )


def store_url(cluster: PostgresCluster) -> str:
    """etcd://h:p,… or etcds://h:p,… (TLS) from spec.store.etcd.endpoints."""
    etcd = cluster.spec.store.etcd
    if etcd is None:
        raise NodeError(
            "spec.store.etcd: `node run` needs a store every machine reaches; add "
            "spec.store: {etcd: {endpoints: [https://HOST:2379, …], tls: {ca: …}}} (docs/multi-machine.md)"
        )
    hosts = ",".join(e.split("://", 1)[1].rstrip("/") for e in etcd.endpoints)
    return f"{'etcds' if etcd.secure else 'etcd'}://{hosts}"


def node_config(cluster: PostgresCluster, member: str, paths: NodePaths, bundle: Bundle) -> AgentConfig:
    """The AgentConfig of `member` on its machine; NodeError naming the problem, changing nothing."""
    if member not in cluster.member_names():
        raise NodeError(f"--member {member}: not in spec.members of {cluster.name} "
                        f"({', '.join(cluster.member_names())}); use one of those names")
    url = store_url(cluster)
    spec = cluster.member_spec(member)
    assert spec.host is not None  # the document requires a host for every member with spec.store.etcd
    missing = bundle.missing()
    if missing:
        raise BundleError(
            f"bundle {bundle.directory} lacks {', '.join(p.name for p in missing)}: copy DIR/{member}/ made by "
            f"`pgkeel secrets init -f FILE --out DIR` to this machine (or pass --secrets)"
        )
    return AgentConfig(
        name=member,
        dcs_url=url,
        etcd=etcd_access(cluster),
        api_host=spec.host,
        api_port=spec.api_port,
        api_token_file=bundle.token_file,
        api_cert_file=bundle.cert_file,
        api_key_file=bundle.key_file,
        advertise_host=spec.host,
        bindir=Path(cluster.spec.postgres.binaries),
        datadir=paths.datadir,
        config_file=paths.conf / "postgresql.conf",
        pg_host=spec.host,
        pg_port=spec.pg_port,
        socket_dir=paths.run,
        log_file=paths.log_file,
        passfile=paths.passfile,
        superuser_password_file=bundle.superuser_password_file,
        replication_password_file=bundle.replication_password_file,
        tls_dir=paths.tls,
        ca_file=bundle.ca_file,
        tls_names=member_names_for_certificate(cluster, member),
        backup=backups.backup_job(cluster, member, paths, paths.conf),
        **AgentConfig.document_fields(cluster, url),
    )


def prepare_node(cluster: PostgresCluster, config: AgentConfig, paths: NodePaths) -> None:
    """Write what the agent reads at start (as the user it runs as): the rendered config files (pgbackrest.conf
    with spec.backup), the pgpass file, and the links from DIR/tls to the bundle's certificate."""
    for directory in (paths.conf, paths.run):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    rendered = render_config(cluster, config_dir=str(paths.conf))
    atomic_write(paths.conf / "postgresql.conf", rendered.postgresql_conf, mode=0o644)
    atomic_write(paths.conf / "pg_hba.conf", rendered.pg_hba_conf, mode=0o644)
    backups.write_config(cluster, paths.base, paths.conf)
    try:
        write_passfile(config)  # also links DIR/tls/server.crt|key to the bundle's pair
    except PermissionError as exc:
        owner = config.ca_file.parent if config.ca_file else "THE-BUNDLE-DIR"
        raise BundleError(f"{exc.filename}: not readable by this user; the bundle must belong to the user the "
                          f"agent runs as: chown -R postgres: {owner}") from None
