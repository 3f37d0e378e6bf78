"""Pod certificates issued ahead (`render secrets`) work with `sslmode=verify-full` against a real PostgreSQL.

A pod's mounts are laid out as the kubelet does (root-owned files, group postgres, mode 0440, behind
the `..data` link it swaps atomically on a Secret update); the agent's own code picks this pod's
certificate by name, and libpq checks it against every DNS name a client uses (`host=NAME` with
`hostaddr=127.0.0.1`). The CA key is nowhere in the pod.
"""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from pgkeel.agent.from_env import EnvError, config_from_env, pod_certificate, write_passfile
from pgkeel.document import PostgresCluster, load_cluster
from pgkeel.instance import Instance, RunAs
from pgkeel.k8s import layout
from pgkeel.k8s.secrets import generate_credentials, pod_certificates
from pgkeel.local.layout import chown_for_postgres, free_port
from pgkeel.pgconf import render_config
from pgkeel.tls import create_ca

ROOT = Path(__file__).resolve().parents[3]
BINDIR = Path("/usr/lib/postgresql/15/bin")
pytestmark = pytest.mark.skipif(not (BINDIR / "postgres").exists(), reason="PostgreSQL 15 binaries not installed")
POD = "pg-0"


def project(directory: Path, data: dict[str, str], generation: int) -> None:
    """What the kubelet does with a Secret volume (defaultMode 0440, fsGroup postgres): files in a
    timestamped directory, `..data` swapped to it in one rename, each key a link through `..data`."""
    gid = grp.getgrnam("postgres").gr_gid
    version = directory / f"..gen{generation}"
    version.mkdir()
    for key, value in data.items():
        (version / key).write_text(value)
        os.chmod(version / key, 0o440)
        os.chown(version / key, 0, gid)
    tmp = directory / "..data_tmp"
    tmp.symlink_to(version.name)
    os.replace(tmp, directory / "..data")
    for key in data:
        if not (directory / key).is_symlink():
            (directory / key).symlink_to(f"..data/{key}")


class Pod:
    """One pod's mounts and environment for the cluster `pg` in namespace `db`, on 127.0.0.1."""

    def __init__(self, base: Path, instances: int = 3) -> None:
        self.base = base
        self.etc, self.secrets, self.certs = base / "etc", base / "secrets", base / "certs"
        for d in (self.etc, self.secrets, self.certs):
            d.mkdir(mode=0o755)
        self.write_document(instances)
        self.cluster: PostgresCluster = load_cluster(self.etc / "cluster.yaml")
        rendered = render_config(self.cluster, config_dir=str(self.etc))
        (self.etc / "postgresql.conf").write_text(rendered.postgresql_conf)
        (self.etc / "pg_hba.conf").write_text(rendered.pg_hba_conf)
        self.credentials = generate_credentials()
        project(self.secrets, self.credentials, 1)
        self.ca = create_ca("pg")
        project(self.certs, pod_certificates(self.cluster, self.ca), 1)
        (base / POD).mkdir(mode=0o755)
        chown_for_postgres(base / POD)
        self.port = free_port()

    def write_document(self, instances: int) -> None:
        doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
        doc["metadata"].update(name="pg", namespace="db")
        doc["spec"].update(instances=instances, resources={"cpu": "1", "memory": "512Mi"})
        (self.etc / "cluster.yaml").write_text(yaml.safe_dump(doc))

    def env(self, pod: str = POD) -> dict[str, str]:
        return {
            layout.ENV_POD_NAME: pod,
            layout.ENV_POD_NAMESPACE: "db",
            layout.ENV_POD_IP: "127.0.0.1",
            layout.ENV_CLUSTER: "pg",
            layout.ENV_PGDATA: str(self.base / pod / "pgdata"),
            "PGKEEL_CONFIG_DIR": str(self.etc),
            "PGKEEL_SECRETS_DIR": str(self.secrets),
            "PGKEEL_CERTS_DIR": str(self.certs),
            "PGKEEL_SOCKET_DIR": str(self.base / pod / "run"),
            "PGKEEL_PG_HOST": "127.0.0.1",
            "PGKEEL_PG_PORT": str(self.port),
        }

    def connect(self, host: str, ca: Path | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=host, hostaddr="127.0.0.1", port=self.port, dbname="postgres", user="postgres",
            password=self.credentials[layout.SUPERUSER_PASSWORD_KEY], sslmode="verify-full",
            sslrootcert=str(ca or self.certs / layout.CA_CERT_KEY), connect_timeout=5,
        )


@pytest.fixture
def pod() -> Iterator[Pod]:
    base = Path(tempfile.mkdtemp(prefix="pgkeel-podcerts-"))
    os.chmod(base, 0o755)
    try:
        yield Pod(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def server(pod: Pod) -> Iterator[Instance]:
    """The pod's postgres, started the way the agent starts it, after the agent's own file setup."""
    cfg = config_from_env(pod.env())
    write_passfile(cfg)  # also links this pod's certificate where postgresql.conf names it
    assert cfg.tls_dir is not None
    for path in (cfg.tls_dir, cfg.passfile):  # in the pod the agent, uid postgres, made them
        chown_for_postgres(path)
    inst = Instance(cfg.instance_config(), RunAs.for_current_process())
    try:
        inst.initdb()
        inst.configure(standby=False, leader=None, sync_standby_names="")
        inst.start()
        yield inst
    finally:
        with contextlib.suppress(Exception):
            inst.stop("immediate", timeout=10)


def names_clients_use(pod: str = POD) -> list[str]:
    forms = []
    for host in (f"{pod}.pg-hl", "pg-rw", "pg-ro"):
        forms += [host, f"{host}.db", f"{host}.db.svc", f"{host}.db.svc.cluster.local"]
    return forms


def test_the_agent_takes_its_own_certificate_and_no_ca_key(pod: Pod) -> None:
    cfg = config_from_env(pod.env())
    assert cfg.ca_file == pod.certs / "ca.crt" and cfg.ca_key_file is None
    write_passfile(cfg)
    assert cfg.tls_dir is not None
    cert, key = cfg.tls_dir / "server.crt", cfg.tls_dir / "server.key"
    assert cert.resolve() == (pod.certs / "pg-0.crt").resolve() and key.resolve() == (pod.certs / "pg-0.key").resolve()
    ca_key = pod.ca.key_pem.decode()
    for path in [*pod.base.rglob("*")]:
        if path.is_file():
            assert ca_key not in path.read_text(errors="replace"), path


@pytest.mark.parametrize("name", names_clients_use())
def test_verify_full_with_every_name_a_client_uses(pod: Pod, server: Instance, name: str) -> None:
    with pod.connect(name) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)


def test_verify_full_refuses_another_pods_name_and_another_ca(pod: Pod, server: Instance, tmp_path: Path) -> None:
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        pod.connect("pg-1.pg-hl.db.svc")
    stranger = tmp_path / "other-ca.crt"
    stranger.write_bytes(create_ca("pg").cert_pem)
    with pytest.raises(psycopg.OperationalError, match="SSL error"):
        pod.connect("pg-rw.db.svc", ca=stranger)


def test_reissued_certificates_reach_postgres_at_a_reload(pod: Pod, server: Instance, tmp_path: Path) -> None:
    """`render certs | kubectl apply`: the kubelet swaps the files, the agent's links follow, a reload serves them."""
    old_ca = tmp_path / "old-ca.crt"
    old_ca.write_bytes(pod.ca.cert_pem)
    project(pod.certs, pod_certificates(pod.cluster, create_ca("pg")), 2)
    server.reload()
    deadline = time.monotonic() + 30
    while True:
        try:
            with pod.connect("pg-rw.db.svc.cluster.local"):  # trusts the new CA (the mounted ca.crt)
                break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with pytest.raises(psycopg.OperationalError, match="SSL error"):
        pod.connect("pg-rw.db.svc.cluster.local", ca=old_ca)


def test_a_member_without_a_certificate_is_refused_with_the_fix(pod: Pod) -> None:
    assert pod_certificate(config_from_env(pod.env("pg-3"))) is not None  # issued for what `kubectl scale` adds
    # A certs Secret rendered before pods past the members got certificates: only pg-0 … pg-2.
    issued = pod_certificates(pod.cluster, pod.ca)
    project(pod.certs, {k: v for k, v in issued.items() if not k.startswith(("pg-3.", "pg-4."))}, 2)
    pod.write_document(5)
    cfg = config_from_env(pod.env("pg-3"))
    with pytest.raises(EnvError, match="render certs"):
        write_passfile(cfg)


def test_a_secret_from_before_still_lets_the_agent_issue_its_own(pod: Pod) -> None:
    """Upgrade path: an old Secret held ca.crt and ca.key beside the passwords, and no certs mount."""
    shutil.rmtree(pod.certs)
    ca = create_ca("pg")
    project(pod.secrets, {**pod.credentials, "ca.crt": ca.cert_pem.decode(), "ca.key": ca.key_pem.decode()}, 2)
    cfg = config_from_env(pod.env())
    assert cfg.ca_file == pod.secrets / "ca.crt" and cfg.ca_key_file == pod.secrets / "ca.key"
    write_passfile(cfg)
    assert cfg.tls_dir is not None and not (cfg.tls_dir / "server.crt").exists()  # housekeeping issues it
