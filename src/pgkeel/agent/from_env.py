"""The in-pod agent's configuration, from the environment the StatefulSet gives it.

Identity from the downward API (POD_NAME, POD_NAMESPACE, POD_IP), the cluster document and
postgresql.conf from the ConfigMap mount, passwords from the Secret mount, data in the volume.
Every path and port can be overridden by environment (PGKEEL_*), which is how tests run three
such agents on one machine. Passwords are only ever read from files and written to the pgpass
file (0600): never on a command line, in the environment or in a log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pgkeel.document import load_cluster
from pgkeel.ha.config import AgentConfig
from pgkeel.instance.files import atomic_write
from pgkeel.k8s import layout

# Secret keys of the cluster CA (the manifests mount them with the others).
CA_CERT_KEY = layout.CA_CERT_KEY
CA_KEY_KEY = layout.CA_KEY_KEY


class EnvError(ValueError):
    """The pod's environment lacks something the agent cannot run without."""


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise EnvError(f"environment variable {name} is not set (the StatefulSet's downward API provides it)")
    return value


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
    if pod not in cluster.member_names():
        raise EnvError(f"pod {pod} is not a member of {name} ({', '.join(cluster.member_names())})")
    # The API binds to the pod's own address, which is also what peers are told (api_url): 0.0.0.0
    # would be advertised verbatim. Probes and peers both reach the pod IP.
    pod_ip = env.get(layout.ENV_POD_IP, "").strip() or "0.0.0.0"
    bindir = cluster.spec.postgres.bindir or f"/usr/lib/postgresql/{cluster.spec.postgres.version}/bin"
    advertise = env.get("PGKEEL_ADVERTISE_HOST", layout.pod_fqdn(pod, name, namespace))
    services = [f"{name}{suffix}" for suffix in (layout.RW_SUFFIX, layout.RO_SUFFIX)]
    tls_names = [
        advertise,
        layout.pod_fqdn(pod, name, namespace),
        *services,
        *(f"{svc}.{namespace}.svc" for svc in services),
        *([pod_ip] if pod_ip != "0.0.0.0" else []),
        "localhost",
    ]
    return AgentConfig(
        name=pod,
        dcs_url=f"kubernetes://{namespace}/{name}",
        api_host=env.get("PGKEEL_API_HOST", pod_ip),
        api_port=int(env.get("PGKEEL_API_PORT", str(layout.API_PORT))),
        api_token_file=secrets / layout.API_TOKEN_KEY,
        advertise_host=advertise,
        bindir=Path(env.get("PGKEEL_BINDIR", bindir)),
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
        ca_file=Path(env.get("PGKEEL_CA_FILE", secrets / CA_CERT_KEY)),
        ca_key_file=Path(env.get("PGKEEL_CA_KEY_FILE", secrets / CA_KEY_KEY)),
        tls_names=list(dict.fromkeys(tls_names)),
        **AgentConfig.document_fields(cluster),
    )


def _pgpass_field(value: str) -> str:
    """libpq's pgpass escaping: backslash and colon."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def write_passfile(config: AgentConfig) -> None:
    """The pgpass file libpq and the postgres tools read, from the mounted Secret files (mode 0600)."""
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
