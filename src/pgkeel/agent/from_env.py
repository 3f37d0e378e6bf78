"""The in-pod agent's configuration, from the environment the StatefulSet gives it.

Identity from the downward API (POD_NAME, POD_NAMESPACE, POD_IP), the cluster document and
postgresql.conf from the ConfigMap mount, passwords from the Secret mount, the CA certificate and
this pod's server certificate (issued ahead, by pod name) from the certs mount, data in the volume.
Every path and port can be overridden by environment (PGKEEL_*), which is how tests run three
such agents on one machine. Passwords are only ever read from files and written to the pgpass
file (0600): never on a command line, in the environment or in a log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pgkeel.backup.job import BackupJob
from pgkeel.document import MAX_INSTANCES, PostgresCluster, load_cluster
from pgkeel.document.backup import PGBACKREST_CONF
from pgkeel.ha.config import AgentConfig
from pgkeel.instance.files import atomic_write
from pgkeel.k8s import layout

log = logging.getLogger("pgkeel.agent")

CA_CERT_KEY = layout.CA_CERT_KEY
CA_KEY_KEY = layout.CA_KEY_KEY  # only in Secrets rendered before the CA key left the pods
# Names postgresql.conf gives the certificate (ssl_cert_file = '../tls/server.crt', beside PGDATA).
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"


class EnvError(ValueError):
    """The pod's environment lacks something the agent cannot run without."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise EnvError(f"environment variable {name} is not set (the StatefulSet's downward API provides it)")
    return value


def backup_job(cluster: PostgresCluster, config_dir: Path, pgdata: Path, bindir: Path) -> BackupJob | None:
    """spec.backup's schedules for this pod's agent (they run on the leader's), with the ConfigMap's pgbackrest.conf.

    No hosts and no backup from a standby: the leader's pod sees only its own data directory, and pgBackRest would
    need the primary's files over SSH or TLS. Drills restore under the data volume, not in an emptyDir: the copy is
    as large as the database, which the volume is sized for and the node's ephemeral storage is not.
    """
    spec = cluster.spec.backup
    if spec is None:
        return None
    return BackupJob(config_file=config_dir / PGBACKREST_CONF, stanza=cluster.name, full=spec.schedule.full,
                     diff=spec.schedule.diff, drill=spec.schedule.drill, drill_scratch=backup_dir(pgdata) / "drill",
                     bindir=bindir, from_standby=False)


def backup_dir(pgdata: Path) -> Path:
    """Beside PGDATA on the data volume: pgBackRest's log (layout.BACKUP_LOG_DIR in a pod) and the drills' copies."""
    return pgdata.parent / "backup"


def config_from_env(env: Mapping[str, str] | None = None) -> AgentConfig:
    """The AgentConfig of this pod; reads cluster.yaml but writes nothing."""
    env = os.environ if env is None else env
    pod = _required(env, layout.ENV_POD_NAME)
    namespace = _required(env, layout.ENV_POD_NAMESPACE)
    name = _required(env, layout.ENV_CLUSTER)
    config_dir = Path(env.get("PGKEEL_CONFIG_DIR", layout.CONFIG_DIR))
    secrets = Path(env.get("PGKEEL_SECRETS_DIR", layout.SECRETS_DIR))
    pgdata = Path(env.get(layout.ENV_PGDATA, layout.PGDATA))
    cluster = load_cluster(config_dir / Path(layout.CLUSTER_FILE).name)
    if cluster.name != name:
        raise EnvError(f"{layout.ENV_CLUSTER}={name} but {config_dir}/cluster.yaml describes cluster {cluster.name!r}")
    # A pod past the document's instances comes from `kubectl scale`: it starts, clones and joins once the
    # leader records it in the membership (pgkeel.ha.k8s_scaling); until then it is no member (never promoted).
    at = layout.ordinal(pod, name)
    if pod not in cluster.member_names() and (at is None or at >= MAX_INSTANCES):
        raise EnvError(f"pod {pod} is not a member of {name} ({', '.join(cluster.member_names())}) nor a pod "
                       f"{name}-<ordinal> of its StatefulSet (ordinals 0 … {MAX_INSTANCES - 1})")
    # The API binds to the pod's own address, which is also what peers are told (api_url): 0.0.0.0
    # would be advertised verbatim. Probes and peers reach the pod IP; the API server also listens
    # on 127.0.0.1, where `kubectl port-forward` connects.
    pod_ip = env.get(layout.ENV_POD_IP, "").strip() or "0.0.0.0"
    bindir = Path(env.get("PGKEEL_BINDIR", cluster.spec.postgres.binaries))
    advertise = env.get("PGKEEL_ADVERTISE_HOST", layout.pod_fqdn(pod, name, namespace))
    domain = env.get(layout.ENV_CLUSTER_DOMAIN, layout.DEFAULT_CLUSTER_DOMAIN)
    ip = [pod_ip] if pod_ip != "0.0.0.0" else []
    tls_names = [advertise, *layout.server_names(pod, name, namespace, domain), *ip]
    certs = Path(env.get("PGKEEL_CERTS_DIR", layout.CERTS_DIR))
    # The CA certificate comes with the pod certificates; a Secret from before holds it (and the
    # CA key, with which the agent then still issues its own certificate) beside the passwords.
    legacy = not (certs / CA_CERT_KEY).exists() and (secrets / CA_CERT_KEY).exists()
    ca_file = Path(env.get("PGKEEL_CA_FILE", (secrets if legacy else certs) / CA_CERT_KEY))
    ca_key = env.get("PGKEEL_CA_KEY_FILE") or (str(secrets / CA_KEY_KEY) if (secrets / CA_KEY_KEY).exists() else "")
    dcs_url = f"kubernetes://{namespace}/{name}"
    return AgentConfig(
        name=pod,
        dcs_url=dcs_url,
        api_host=env.get("PGKEEL_API_HOST", pod_ip),
        api_port=int(env.get("PGKEEL_API_PORT", str(layout.API_PORT))),
        api_token_file=secrets / layout.API_TOKEN_KEY,
        advertise_host=advertise,
        bindir=bindir,
        datadir=pgdata,
        config_file=config_dir / Path(layout.CONFIG_FILE).name,
        pg_host=env.get("PGKEEL_PG_HOST", "*"),
        pg_port=int(env.get("PGKEEL_PG_PORT", str(layout.PG_PORT))),
        socket_dir=Path(env.get("PGKEEL_SOCKET_DIR", layout.RUN_DIR)),
        log_file=Path(env.get("PGKEEL_LOG_FILE", pgdata.parent / "postgres.log")),
        passfile=Path(env.get("PGKEEL_PASSFILE", pgdata.parent / ".pgpass")),
        superuser_password_file=secrets / layout.SUPERUSER_PASSWORD_KEY,
        replication_password_file=secrets / layout.REPLICATION_PASSWORD_KEY,
        # postgresql.conf names its certificate relative to the data directory: ../tls/server.crt
        tls_dir=pgdata.parent / "tls",
        ca_file=ca_file,
        ca_key_file=Path(ca_key) if ca_key else None,
        tls_names=list(dict.fromkeys(tls_names)),
        backup=backup_job(cluster, config_dir, pgdata, bindir),
        **AgentConfig.document_fields(cluster, dcs_url),
    )


def _pgpass_field(value: str) -> str:
    """libpq's pgpass escaping: backslash and colon."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pod_certificate(config: AgentConfig) -> tuple[Path, Path] | None:
    """This pod's certificate and key in the certs mount (beside the CA certificate), by pod name.

    None when nothing needs installing: TLS off, or a CA key is mounted (an older Secret: the
    agent issues its own), or no certs mount at all (outside a pod; in one the kubelet does not
    start the container without it).
    """
    if not config.tls_enabled or config.ca_key_file is not None or config.ca_file is None:
        return None
    certs = config.ca_file.parent
    if not certs.is_dir():
        log.warning("no certificates mounted at %s: postgres cannot start with TLS on", certs)
        return None
    cert, key = (certs / name for name in layout.pod_cert_keys(config.name))
    if not (cert.exists() and key.exists()):
        raise EnvError(
            f"{certs} has no certificate for pod {config.name} ({cert.name}, {key.name}): issue them "
            "for every member with `pgkeel render certs -f FILE --ca-dir DIR | kubectl apply -f -`"
        )
    return cert, key


def install_certificate(config: AgentConfig) -> bool:
    """Link TLS_DIR/server.crt and server.key (where postgresql.conf looks) to this pod's mounted pair.

    Links, not copies: a re-issued Secret reaches postgres at its next reload, no restart. Returns
    True when there was a certificate to link.
    """
    found = pod_certificate(config)
    if found is None or config.tls_dir is None:
        return False
    config.tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for source, name in zip(found, (SERVER_CERT, SERVER_KEY), strict=True):
        link = config.tls_dir / name
        tmp = link.with_name(f".{name}.link")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        os.replace(tmp, link)  # also replaces a certificate the agent issued itself before
    return True


def write_passfile(config: AgentConfig) -> None:
    """The files the agent makes from the Secret mounts before it starts: the pgpass file libpq and
    the postgres tools read (mode 0600), and the links to this pod's certificate (see install_certificate)."""
    lines = []
    for user, source in (
        (config.superuser, config.superuser_password_file),
        (config.replication_user, config.replication_password_file),
    ):
        password = source.read_text().strip()
        if not password:
            raise EnvError(f"{source} is empty")
        lines.append(f"*:*:*:{_pgpass_field(user)}:{_pgpass_field(password)}\n")
    config.passfile.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(config.passfile, "".join(lines), mode=0o600)
    install_certificate(config)
    if config.backup is not None:  # pgBackRest does not create its log directory (the conf names it)
        (backup_dir(config.datadir) / "log").mkdir(parents=True, exist_ok=True, mode=0o700)
