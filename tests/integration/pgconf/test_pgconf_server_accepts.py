"""Rendered configs loaded into a real PostgreSQL 15: no errors in pg_file_settings / pg_hba_file_rules,
and the server's values equal the rendered ones. Configs too big for this machine go through `postgres -C`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pgconf_docs import cluster

from pgkeel.pgconf import Setting, load_catalogue, render_config
from pgkeel.pgconf.values import parse_value
from pgkeel.tls import create_ca, ensure_server_certificate

BINDIR = Path("/usr/lib/postgresql/15/bin")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (BINDIR / "postgres").exists(), reason="PostgreSQL 15 binaries not installed"),
]
SIZES = {"tiny": ("500m", "512Mi", "1Gi"), "medium": ("2", "4Gi", "20Gi"), "large": ("16", "64Gi", "1Ti")}
WORKLOADS = ("oltp", "web", "dw", "mixed")
INSTANCES = (1, 3, 5)
NODE_OVERRIDES = {"port", "listen_addresses"}  # given with -c, as the agent does
CAT = load_catalogue(15)


def as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    extra = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60, **extra, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """One initdb'd data directory shared by the whole matrix (initdb is the slow part)."""
    root = Path(tempfile.mkdtemp(prefix="pgkeel-pgconf-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    proc = as_postgres([str(BINDIR / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--no-sync", "-A", "peer"])
    assert proc.returncode == 0, proc.stderr
    # ssl = on with ssl_cert_file = '../tls/server.crt': the node certificate beside the data directory
    owner = (pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid) if os.geteuid() == 0 else None
    ca = create_ca("pgconf-test")
    ensure_server_certificate(root / "tls", ca, "localhost", ["localhost", "127.0.0.1"], owner=owner)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def write_config(root: Path, doc, name: str) -> tuple[Path, list[Setting]]:
    conf = root / name
    conf.mkdir(exist_ok=True)
    rendered = render_config(doc, config_dir=str(conf))
    (conf / "postgresql.conf").write_text(rendered.postgresql_conf)
    (conf / "pg_hba.conf").write_text(rendered.pg_hba_conf)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (conf, conf / "postgresql.conf", conf / "pg_hba.conf"):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    return conf, rendered.settings


def same_value(setting: Setting, server: str) -> bool:
    guc = CAT[setting.name]
    ours = parse_value(guc, setting.value)
    if ours.base is not None:
        return parse_value(guc, server).base == pytest.approx(ours.base)
    return ours.text == server


def matrix(sizes: tuple[str, ...]) -> list:
    return [pytest.param(s, w, n, id=f"{s}-{w}-{n}") for s in sizes for w in WORKLOADS for n in INSTANCES]


def doc_for(size: str, workload: str, instances: int):
    cpu, mem, disk = SIZES[size]
    return cluster(cpu=cpu, memory=mem, size=disk, workload=workload, instances=instances,
                   hba=["host all app 10.1.0.0/16 scram-sha-256", "local all app scram-sha-256"])


@pytest.mark.parametrize(("size", "workload", "instances"), matrix(("tiny", "medium")))
def test_server_starts_with_rendered_config(workdir, size, workload, instances):
    conf, settings = write_config(workdir, doc_for(size, workload, instances), f"{size}-{workload}-{instances}")
    sock = conf / "sock"
    sock.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(sock, pw.pw_uid, pw.pw_gid)
    port = free_port()
    opts = (f"-c config_file={conf}/postgresql.conf -c port={port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={sock}")
    pg_ctl = str(BINDIR / "pg_ctl")
    data = str(workdir / "data")
    started = as_postgres([pg_ctl, "-D", data, "-o", opts, "-l", str(conf / "log"), "-w", "-t", "30", "start"])
    try:
        assert started.returncode == 0, started.stderr + (conf / "log").read_text()

        def sql(query: str) -> list[list[str]]:
            out = as_postgres([str(BINDIR.parent / "bin" / "psql"), "-h", str(sock), "-p", str(port), "-U",
                               "postgres", "-d", "postgres", "-AtX", "-F", "\t", "-c", query])
            assert out.returncode == 0, out.stderr
            return [line.split("\t") for line in out.stdout.splitlines()]

        # The per-node -c values win over the file's postmaster-context port/listen_addresses, which
        # pg_file_settings reports as "could not be applied"; anything else would be a real error.
        errors = sql("SELECT name, error FROM pg_file_settings WHERE error IS NOT NULL ORDER BY name")
        assert errors == [[n, "setting could not be applied"] for n in sorted(NODE_OVERRIDES)]
        assert sql("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL") == []
        assert len(sql("SELECT 1 FROM pg_hba_file_rules")) == 8
        server = dict(sql("SELECT name, setting FROM pg_settings"))
        applied = dict(sql("SELECT name, setting FROM pg_file_settings"))
        for s in settings:
            if s.name in NODE_OVERRIDES:
                assert applied[s.name] == s.value
                continue
            assert same_value(s, server[s.name]), (s.name, s.value, server[s.name])
    finally:
        as_postgres([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"])


@pytest.mark.parametrize(("size", "workload", "instances"), matrix(("large",)))
def test_large_config_is_accepted_by_postgres_dash_c(workdir, size, workload, instances):
    """16 CPU / 64Gi does not fit this machine: ask `postgres -C` for each value instead of starting."""
    conf, settings = write_config(workdir, doc_for(size, workload, instances), f"{size}-{workload}-{instances}")
    base = [str(BINDIR / "postgres"), "-D", str(workdir / "data"), "-c", f"config_file={conf}/postgresql.conf"]

    def ask(s: Setting) -> tuple[Setting, subprocess.CompletedProcess[str]]:
        return s, as_postgres([*base, "-C", s.name])

    with ThreadPoolExecutor(max_workers=8) as pool:
        for s, out in pool.map(ask, settings):
            assert out.returncode == 0, (s.name, out.stderr)
            assert same_value(s, out.stdout.strip()), (s.name, s.value, out.stdout)
