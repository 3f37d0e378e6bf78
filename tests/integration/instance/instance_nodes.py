"""Real PostgreSQL 15 servers on loopback, built through Instance as the agent builds them.

Shared by the test_instance_* modules (imported by name: the test folders are not packages).
Each test gets a fresh root under /tmp; every server started here is stopped at teardown (even
when the test failed) by the Instance that started it, and the root is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgkeel.instance import Instance, InstanceConfig, RunAs

BINDIR = Path("/usr/lib/postgresql/15/bin")
REPL_USER = "repl"
REPL_PASSWORD = "repl-secret-for-tests"
needs_pg15 = pytest.mark.skipif(not (BINDIR / "postgres").exists(), reason="PostgreSQL 15 binaries not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chown_pg(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam("postgres")
    for p in paths:
        os.chown(p, pw.pw_uid, pw.pw_gid)


def _conf(home: Path, gucs: dict[str, str]) -> Path:
    """A small postgresql.conf outside PGDATA, as the agent's shared config is."""
    settings = {
        "hba_file": f"'{home / 'pg_hba.conf'}'",
        "wal_level": "replica",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "hot_standby": "on",
        "fsync": "off",
        "synchronous_commit": "off",
        "shared_buffers": "16MB",
        "max_connections": "20",
        "wal_keep_size": "0",
        "wal_retrieve_retry_interval": "500ms",
        **gucs,
    }
    conf = home / "postgresql.conf"
    conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    (home / "pg_hba.conf").write_text(
        "local all all trust\n"
        f"host all {REPL_USER} 127.0.0.1/32 scram-sha-256\n"
        f"host replication {REPL_USER} 127.0.0.1/32 scram-sha-256\n"
        f"host all {REPL_USER} ::1/128 scram-sha-256\n"
        f"host replication {REPL_USER} ::1/128 scram-sha-256\n"
    )
    chown_pg(conf, home / "pg_hba.conf")
    return conf


class Nodes:
    """Factory of Instances under one root; `stop_all` is the cleanup."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Instance] = []
        secrets = root / "secrets"
        secrets.mkdir(mode=0o700)
        self.su_pw = secrets / "superuser.password"
        self.su_pw.write_text("su-secret\n")
        self.repl_pw = secrets / "replication.password"
        self.repl_pw.write_text(REPL_PASSWORD + "\n")
        self.passfile = secrets / "pgpass"
        self.passfile.write_text(f"*:*:*:{REPL_USER}:{REPL_PASSWORD}\n")
        for p in (self.su_pw, self.repl_pw, self.passfile):
            os.chmod(p, 0o600)
        chown_pg(secrets, self.su_pw, self.repl_pw, self.passfile)

    def make(self, name: str, host: str = "127.0.0.1", **gucs: str) -> Instance:
        home = self.root / name
        home.mkdir(mode=0o755)
        chown_pg(home)
        config = InstanceConfig(
            name=name,
            bindir=BINDIR,
            datadir=home / "data",
            config_file=_conf(home, gucs),
            host=host,
            port=free_port(),
            socket_dir=home / "run",
            log_file=home / "postgres.log",
            superuser="postgres",
            replication_user=REPL_USER,
            passfile=self.passfile,
            superuser_password_file=self.su_pw,
            replication_password_file=self.repl_pw,
        )
        inst = Instance(config, RunAs.for_current_process())
        self.made.append(inst)
        return inst

    def primary(self, name: str = "a", host: str = "127.0.0.1", **gucs: str) -> Instance:
        inst = self.make(name, host, **gucs)
        inst.initdb()
        inst.configure(standby=False, leader=None, sync_standby_names="")
        inst.start()
        inst.create_replication_role()
        return inst

    def replica(
        self, leader: Instance, name: str = "b", slot: bool = True, host: str = "127.0.0.1", **gucs: str
    ) -> Instance:
        inst = self.make(name, host, **gucs)
        addr = (leader.config.host, leader.config.port)
        if slot:
            leader.create_slot(inst.config.slot_name)
        inst.basebackup(*addr, use_slot=slot)
        inst.configure(standby=True, leader=addr, sync_standby_names="")
        inst.start()
        return inst

    @staticmethod
    def wait_for(cond: Callable[[], object], timeout: float = 30.0, every: float = 0.1) -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = cond()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"condition not met within {timeout}s")

    def stop_all(self) -> None:
        for inst in self.made:
            with contextlib.suppress(Exception):  # cleanup must reach every node
                inst.stop("immediate", timeout=10)


def make_nodes() -> Iterator[Nodes]:
    """Body of each test module's `nodes` fixture."""
    root = Path(tempfile.mkdtemp(prefix="pgkeel-inst-"))
    os.chmod(root, 0o755)
    chown_pg(root)
    made = Nodes(root)
    try:
        yield made
    finally:
        made.stop_all()
        shutil.rmtree(root, ignore_errors=True)
