"""Where a local cluster keeps its files, and the secrets it generates once.

.pgkeel/
  cluster.yaml                 the document the cluster was started from
  state.json                   ports chosen at first start (kept so restarts reuse them)
  etc/postgresql.conf          the rendered config, identical for every node
  etc/pg_hba.conf
  secrets/ (0700)              superuser.password, replication.password, pgpass, api.token (0600)
  dcs.sqlite                   the embedded coordination store
  nodes/<name>/data            PGDATA
  nodes/<name>/run             unix socket directory
  nodes/<name>/agent.json      the agent's configuration
  nodes/<name>/agent.log, postgres.log, agent.pid
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from pgkeel.instance.files import atomic_write
from pgkeel.instance.process import POSTGRES_OS_USER
from pgkeel.pgconf.member_dir import MemberDir
from pgkeel.tls import create_ca


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam(POSTGRES_OS_USER)
    return entry.pw_uid, entry.pw_gid


def chown_for_postgres(path: Path) -> None:
    """Files the agents (which drop to the postgres user) must own."""
    owner = _owner()
    if owner is not None:
        os.chown(path, *owner)


def free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    avoid = avoid or set()
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def document(self) -> Path:
        return self.root / "cluster.yaml"

    @property
    def dcs_path(self) -> Path:
        return self.root / "dcs.sqlite"

    @property
    def passfile(self) -> Path:
        return self.secrets / "pgpass"

    @property
    def token_file(self) -> Path:
        return self.secrets / "api.token"

    @property
    def ca_file(self) -> Path:
        return self.secrets / "ca.crt"

    @property
    def ca_key_file(self) -> Path:
        return self.secrets / "ca.key"

    def ensure_ca(self, cluster: str) -> None:
        """The cluster CA, created once; put your own ca.crt/ca.key there before the first `up` to bring yours."""
        if not (self.ca_file.exists() and self.ca_key_file.exists()):
            create_ca(cluster).save(self.ca_file, self.ca_key_file)
        for path in (self.ca_file, self.ca_key_file):
            chown_for_postgres(path)

    def password_file(self, role: str) -> Path:
        return self.secrets / f"{role}.password"

    def node(self, name: str) -> Path:
        return self.root / "nodes" / name

    def member_dir(self, name: str) -> MemberDir:
        """nodes/<name>/ as a MemberDir: its data, tls, run and postgres.log."""
        return MemberDir(self.node(name))

    def agent_config(self, name: str) -> Path:
        return self.node(name) / "agent.json"

    def agent_pid_file(self, name: str) -> Path:
        return self.node(name) / "agent.pid"

    def ensure_dirs(self, members: list[str]) -> None:
        for path in [self.root, self.etc, self.root / "nodes"] + [self.node(n) for n in members]:
            path.mkdir(parents=True, exist_ok=True)
            chown_for_postgres(path)
        self.secrets.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.secrets, 0o700)
        chown_for_postgres(self.secrets)

    def ensure_secrets(self, superuser: str, replication_user: str) -> None:
        """Random passwords and the API token, created once, mode 0600, owned by the postgres user."""
        for role in ("superuser", "replication"):
            path = self.password_file(role)
            if not path.exists():
                atomic_write(path, secrets.token_urlsafe(24) + "\n")
            chown_for_postgres(path)
        if not self.token_file.exists():
            atomic_write(self.token_file, secrets.token_urlsafe(32) + "\n")
        chown_for_postgres(self.token_file)
        su = self.password_file("superuser").read_text().strip()
        rep = self.password_file("replication").read_text().strip()
        atomic_write(self.passfile, f"*:*:*:{superuser}:{su}\n*:*:*:{replication_user}:{rep}\n")
        chown_for_postgres(self.passfile)

    def load_state(self) -> dict[str, dict[str, int]]:
        if self.state_file.exists():
            data: dict[str, dict[str, int]] = json.loads(self.state_file.read_text())
            return data
        return {"pg_ports": {}, "api_ports": {}}

    def ensure_ports(self, members: list[str]) -> dict[str, dict[str, int]]:
        state = self.load_state()
        used = set(state["pg_ports"].values()) | set(state["api_ports"].values())
        for name in members:
            for key in ("pg_ports", "api_ports"):
                if name not in state[key]:
                    port = free_port(avoid=used)
                    used.add(port)
                    state[key][name] = port
        atomic_write(self.state_file, json.dumps(state, indent=1) + "\n", mode=0o644)
        return state
