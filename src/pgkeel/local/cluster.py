"""A whole cluster on this machine: one agent process per node, postgres on loopback, sqlite store.

Processes are tracked by PID files and stopped by PID; `up` on an existing directory starts
only the nodes whose agent is not running, which is how a crashed node comes back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pgkeel.document import PostgresCluster, load_cluster
from pgkeel.ha.config import AgentConfig
from pgkeel.instance.files import atomic_write
from pgkeel.local.layout import Layout, chown_for_postgres
from pgkeel.local.runtime import AgentCommand, agent_command
from pgkeel.pgconf import render_config

HOST = "127.0.0.1"


def _pid_alive(pid: int, marker: bytes) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if marker not in cmdline:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class AgentExited(RuntimeError):
    """An agent of the local cluster is not running (it died, or was never started)."""


class LocalCluster:
    def __init__(self, root: str | Path) -> None:
        self.layout = Layout(Path(root).resolve())
        self._command: AgentCommand | None = None
        self._started: dict[str, subprocess.Popen[bytes]] = {}  # agents this process started

    # --- facts ----------------------------------------------------------------------------
    def cluster(self) -> PostgresCluster:
        return load_cluster(self.layout.document)

    def exists(self) -> bool:
        return self.layout.document.exists()

    def agent_pid(self, name: str) -> int | None:
        pid = read_pid(self.layout.agent_pid_file(name))
        if pid is not None and _pid_alive(pid, b"agent"):
            return pid
        return None

    def postgres_pid(self, name: str) -> int | None:
        pid = read_pid(self.layout.node(name) / "data" / "postmaster.pid")
        if pid is not None and _pid_alive(pid, b"postgres"):
            return pid
        return None

    def api_url(self, name: str) -> str:
        return f"http://{HOST}:{self.layout.load_state()['api_ports'][name]}"

    def token(self) -> str:
        return self.layout.token_file.read_text().strip()

    # --- up ---------------------------------------------------------------------------------
    def prepare(self, document: Path) -> PostgresCluster:
        """Validate the document, lay out directories, secrets, ports and the rendered config."""
        cluster = load_cluster(document)
        if self.exists():
            existing = self.cluster()
            if existing.name != cluster.name or existing.spec.instances != cluster.spec.instances:
                raise ValueError(
                    f"{self.layout.root} already holds cluster {existing.name!r} with {existing.spec.instances} "
                    "instances; use another --dir or `pgkeel down --purge` first"
                )
        rendered = render_config(cluster, config_dir=str(self.layout.etc))
        members = cluster.member_names()
        lay = self.layout
        lay.ensure_dirs(members)
        lay.ensure_secrets(cluster.spec.users.superuser, cluster.spec.users.replication)
        if cluster.spec.tls.enabled:
            lay.ensure_ca(cluster.name)
        state = lay.ensure_ports(members)
        if Path(document).resolve() != lay.document:
            shutil.copyfile(document, lay.document)
        atomic_write(lay.etc / "postgresql.conf", rendered.postgresql_conf, mode=0o644)
        atomic_write(lay.etc / "pg_hba.conf", rendered.pg_hba_conf, mode=0o644)
        for name in members:
            self._write_agent_config(cluster, name, state)
        return cluster

    def _write_agent_config(self, cluster: PostgresCluster, name: str, state: dict[str, dict[str, int]]) -> None:
        lay = self.layout
        node = lay.node(name)
        bindir = cluster.spec.postgres.bindir or f"/usr/lib/postgresql/{cluster.spec.postgres.version}/bin"
        config = AgentConfig(
            name=name,
            dcs_url=f"sqlite://{lay.dcs_path}",
            api_host=HOST,
            api_port=state["api_ports"][name],
            api_token_file=lay.token_file,
            advertise_host=HOST,
            bindir=Path(bindir),
            datadir=node / "data",
            config_file=lay.etc / "postgresql.conf",
            pg_host=HOST,
            pg_port=state["pg_ports"][name],
            socket_dir=node / "run",
            log_file=node / "postgres.log",
            passfile=lay.passfile,
            superuser_password_file=lay.password_file("superuser"),
            replication_password_file=lay.password_file("replication"),
            tls_dir=node / "tls",
            ca_file=lay.ca_file,
            ca_key_file=lay.ca_key_file,
            tls_names=[HOST, "localhost"],
            **AgentConfig.document_fields(cluster),
        )
        atomic_write(lay.agent_config(name), config.model_dump_json(indent=1) + "\n", mode=0o644)

    def agent_command(self) -> AgentCommand:
        """This interpreter, or a copy of pgkeel the postgres user can read (see local.runtime)."""
        if self._command is None:
            self._command = agent_command()
        return self._command

    def start_agent(self, name: str) -> int:
        lay = self.layout
        command = self.agent_command()
        log = open(lay.node(name) / "agent.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [*command.argv, "agent", "--config", str(lay.agent_config(name))],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
                env={**os.environ, **command.env},
            )
        finally:
            log.close()
        self._started[name] = proc
        atomic_write(lay.agent_pid_file(name), f"{proc.pid}\n", mode=0o644)
        chown_for_postgres(lay.node(name) / "agent.log")
        return proc.pid

    def up(
        self, document: Path, timeout: float = 120.0, progress: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        cluster = self.prepare(document)
        started = []
        for name in cluster.member_names():
            if self.agent_pid(name) is None:
                self.start_agent(name)
                started.append(name)
        if progress:
            progress(f"started agents: {', '.join(started) or 'none (all running)'}")
        return self.wait_healthy(timeout, progress)

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.layout.node(name) / "agent.log").read_text(errors="replace")
        except OSError:
            return "(no agent.log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_agents_alive(self, names: list[str]) -> None:
        """Raise AgentExited, with the tail of its log, for a member whose agent is not running."""
        for name in names:
            proc = self._started.get(name)
            # Our own children are asked directly: between fork and exec /proc still shows our cmdline.
            exited = proc.poll() is not None if proc is not None else self.agent_pid(name) is None
            if exited:
                log = self.layout.node(name) / "agent.log"
                raise AgentExited(f"the agent of {name} exited; the end of {log}:\n{self.log_tail(name)}")

    def wait_healthy(self, timeout: float = 120.0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Wait until one primary holds the lease and every other member streams from it.

        Never in silence: an agent that exits is reported at once with the end of its log, and a
        timeout says which agents still run."""
        deadline = time.monotonic() + timeout
        last = ""
        names = self.cluster().member_names()
        while True:
            self.check_agents_alive(names)
            status = self.status()
            members = status["members"]
            primaries = [m for m in members if m["role"] == "primary" and m["name"] == status["leader"]]
            streaming = [m for m in members if m["role"] == "replica" and m["state"] == "streaming"]
            summary = ", ".join(f"{m['name']}={m['role']}/{m['state']}" for m in members)
            if progress and summary != last:
                progress(summary)
                last = summary
            if len(primaries) == 1 and len(streaming) == len(members) - 1:
                return status
            if time.monotonic() > deadline:
                running = [n for n in names if self.agent_pid(n) is not None]
                raise TimeoutError(
                    f"cluster not healthy within {timeout:g}s: {summary}; agents still running: "
                    f"{', '.join(running) or 'none'} (`pgkeel down` stops them); "
                    f"see {self.layout.root}/nodes/*/agent.log"
                )
            time.sleep(0.2)

    # --- status -------------------------------------------------------------------------------
    def fetch(self, name: str, path: str = "/status", timeout: float = 1.0) -> dict[str, Any] | None:
        try:
            body = httpx.get(self.api_url(name) + path, timeout=timeout).json()
        except (httpx.HTTPError, ValueError, KeyError):
            return None
        return body if isinstance(body, dict) else None

    def dsn(self, read_write: bool = True) -> str:
        cluster = self.cluster()
        ports = self.layout.load_state()["pg_ports"]
        names = cluster.member_names()
        hosts = ",".join(HOST for _ in names)
        port_list = ",".join(str(ports[n]) for n in names)
        attrs = "read-write" if read_write else "prefer-standby"
        return (
            f"host={hosts} port={port_list} user={cluster.spec.users.superuser} dbname=postgres "
            f"passfile={self.layout.passfile} target_session_attrs={attrs} connect_timeout=2{self._ssl(cluster)}"
        )

    def _ssl(self, cluster: PostgresCluster) -> str:
        if not cluster.spec.tls.enabled:
            return ""
        return f" sslmode=verify-full sslrootcert={self.layout.ca_file}"

    def node_dsn(self, name: str) -> str:
        cluster = self.cluster()
        port = self.layout.load_state()["pg_ports"][name]
        return (
            f"host={HOST} port={port} user={cluster.spec.users.superuser} dbname=postgres "
            f"passfile={self.layout.passfile} connect_timeout=2{self._ssl(cluster)}"
        )

    def status(self) -> dict[str, Any]:
        cluster = self.cluster()
        state = self.layout.load_state()
        members: list[dict[str, Any]] = []
        leader = None
        # one /status per node; sync states come from the primary's view of its peers
        snaps = {n: (self.fetch(n) if self.agent_pid(n) else None) for n in cluster.member_names()}
        primary = next((s for s in snaps.values() if s and s.get("role") == "primary"), None) or {}
        sync_of = {r["name"]: r["sync_state"] for r in primary.get("replication", [])}
        for name, snap in snaps.items():
            pg = (snap or {}).get("postgres") or {}
            role = (snap or {}).get("role") or "stopped"
            if snap and snap.get("refused"):
                role = "refused"
            state_text = "stopped"
            if pg.get("running"):
                state_text = (
                    "running"
                    if pg.get("in_recovery") is False
                    else ("streaming" if pg.get("streaming") else "recovering")
                )
            if snap and snap.get("leader"):
                leader = leader or snap["leader"]
            members.append(
                {
                    "name": name,
                    "role": role,
                    "state": state_text if snap else ("agent down" if self.postgres_pid(name) else "stopped"),
                    "timeline": pg.get("timeline"),
                    "lsn": pg.get("lsn"),
                    "lag_bytes": (snap or {}).get("lag_bytes"),
                    "sync": sync_of.get(name),
                    "api_url": self.api_url(name),
                    "postgres_pid": self.postgres_pid(name),
                    "agent_pid": self.agent_pid(name),
                    "port": state["pg_ports"].get(name),
                    "cert_not_after": ((snap or {}).get("tls") or {}).get("certificate_not_after"),
                }
            )
        return {"leader": leader, "dsn_rw": self.dsn(True), "dsn_ro": self.dsn(False), "members": members}

    # --- control ----------------------------------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for name in self.cluster().member_names():
            if self.agent_pid(name) is None:
                continue
            try:
                resp = httpx.post(
                    self.api_url(name) + path,
                    json=body,
                    headers={"Authorization": f"Bearer {self.token()}"},
                    timeout=3.0,
                )
            except httpx.HTTPError as exc:
                errors.append(f"{name}: {exc}")
                continue
            data: dict[str, Any] = resp.json()
            if resp.status_code >= 400:
                raise RuntimeError(data.get("error", resp.text))
            return data
        raise RuntimeError("no agent answered: " + "; ".join(errors) if errors else "no agent is running")

    def switchover(self, to: str | None = None, wait: float = 30.0) -> dict[str, Any]:
        before = self.status()["leader"]
        self._post("/switchover", {"to": to})
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            status = self.status()
            leader = status["leader"]
            if (
                leader
                and leader != before
                and any(m["name"] == leader and m["role"] == "primary" for m in status["members"])
            ):
                return status
            time.sleep(0.1)
        raise TimeoutError(f"switchover did not complete within {wait:g}s (leader still {before})")

    def failover(self, to: str, force: bool = False) -> dict[str, Any]:
        return self._post("/failover", {"to": to, "force": force})

    # --- down ---------------------------------------------------------------------------------------
    def down(self, purge: bool = False, timeout: float = 30.0) -> list[str]:
        """Stop every agent (which stops its postgres) and any postgres left without one, by PID."""
        stopped = []
        names = self.cluster().member_names() if self.exists() else []
        for name in names:
            pid = self.agent_pid(name)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + timeout
        for name in names:
            while self.agent_pid(name) and time.monotonic() < deadline:
                time.sleep(0.05)
            pid = self.agent_pid(name)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pg = self.postgres_pid(name)
            if pg:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pg, signal.SIGINT)
                end = time.monotonic() + timeout
                while self.postgres_pid(name) and time.monotonic() < end:
                    time.sleep(0.05)
                pg = self.postgres_pid(name)
                if pg:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pg, signal.SIGQUIT)
        if purge and self.layout.root.exists():
            shutil.rmtree(self.layout.root)
        return stopped
