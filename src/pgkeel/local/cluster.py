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

from pgkeel.backup.job import BackupHost, BackupJob
from pgkeel.backup.plan import Result
from pgkeel.document import PostgresCluster, load_cluster
from pgkeel.ha.backup_record import wait_for_result
from pgkeel.ha.config import AgentConfig
from pgkeel.instance.files import atomic_write
from pgkeel.local import backups, restore, stored_document
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
    def document_for_up(self, given: Path | None, default: Path) -> Path:
        """The document `up` starts from: the one given, else the cluster's own, else `default` (a new cluster)."""
        return stored_document.for_up(self.layout, given, default)

    def prepare(self, document: Path, apply: bool = False, scaling: bool = False) -> PostgresCluster:
        """Validate the document, lay out directories, secrets, ports and the rendered config.

        On an existing cluster its own document stays unless `apply`: another one is refused with a diff.
        What cannot be carried out (another name, instance count or major version) is refused either way,
        except other members when `scaling` (pgkeel.local.scaling). Nothing is written before every check passed."""
        cluster = load_cluster(document)
        lay = self.layout
        stored_document.check_carried_out(lay, cluster, scaling)
        replace = stored_document.check_change(lay, document, cluster, apply)
        rendered = render_config(cluster, config_dir=str(lay.etc))
        members = cluster.member_names()
        lay.ensure_dirs(members)
        lay.ensure_secrets(cluster.spec.users.superuser, cluster.spec.users.replication)
        if cluster.spec.tls.enabled:
            lay.ensure_ca(cluster.name)
        state = lay.ensure_ports(members)
        if replace:
            shutil.copyfile(document, lay.document)
        atomic_write(lay.etc / "postgresql.conf", rendered.postgresql_conf, mode=0o644)
        atomic_write(lay.etc / "pg_hba.conf", rendered.pg_hba_conf, mode=0o644)
        backups.write_config(lay, cluster)
        for name in members:
            self._write_agent_config(cluster, name, state)
        return cluster

    def _write_agent_config(self, cluster: PostgresCluster, name: str, state: dict[str, dict[str, int]]) -> None:
        lay = self.layout
        node = lay.node(name)
        bindir = cluster.spec.postgres.binaries
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
            backup=self._backup_job(cluster, state),
            **AgentConfig.document_fields(cluster),
        )
        atomic_write(lay.agent_config(name), config.model_dump_json(indent=1) + "\n", mode=0o644)

    def _backup_job(self, cluster: PostgresCluster, state: dict[str, dict[str, int]]) -> BackupJob | None:
        """spec.backup's schedules for the agents, with every member's postgres on this machine (backups
        from a standby are copied by the leader's agent, which reaches the standby's files and socket)."""
        spec = cluster.spec.backup
        if spec is None:
            return None
        lay = self.layout
        hosts = {name: BackupHost(datadir=lay.node(name) / "data", port=port, socket_dir=lay.node(name) / "run")
                 for name, port in state["pg_ports"].items()}
        return BackupJob(config_file=backups.config_file(lay), stanza=cluster.name, full=spec.schedule.full,
                         diff=spec.schedule.diff, drill=spec.schedule.drill, drill_scratch=backups.drill_scratch(lay),
                         bindir=Path(cluster.spec.postgres.binaries), from_standby=spec.from_standby, hosts=hosts)

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
        self,
        document: Path,
        timeout: float = 120.0,
        progress: Callable[[str], None] | None = None,
        apply: bool = False,
    ) -> dict[str, Any]:
        """Start what is not running; `apply` lets `document` replace the cluster's own (see prepare)."""
        cluster = self.prepare(document, apply=apply)
        source = cluster.spec.bootstrap.from_backup
        if source is not None and restore.needs_restore(self.layout, cluster):
            if progress:
                progress(f"restoring {cluster.member_names()[0]} from spec.bootstrap.fromBackup's repository…")
            record = restore.restore_first_member(self.layout, cluster, source)
            if progress:
                progress(f"restored backup {record['from_backup']['backup']} to {record['recovered_lsn']} "
                         f"in {record['restore_seconds'] + record['replay_seconds']:.1f}s")
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

    def check_member(self, name: str) -> None:
        """ValueError naming the members, for a name that is not one."""
        members = self.cluster().member_names()
        if name not in members:
            raise ValueError(f"unknown member {name!r}; members are {', '.join(members)}")

    def node_dsn(self, name: str) -> str:
        self.check_member(name)
        return self.port_dsn(self.layout.load_state()["pg_ports"][name])

    def port_dsn(self, port: int) -> str:
        """One server at HOST:port as the superuser: a member, or a proxy in front of them (HAProxy)."""
        cluster = self.cluster()
        return (
            f"host={HOST} port={port} user={cluster.spec.users.superuser} dbname=postgres "
            f"passfile={self.layout.passfile} connect_timeout=2{self._ssl(cluster)}"
        )

    def psql_argv(self, name: str | None, args: list[str]) -> list[str]:
        """psql on the primary (or on member `name`) with the caller's arguments after the DSN."""
        dsn = self.node_dsn(name) if name else self.dsn(True)
        spec = self.cluster().spec.postgres
        bindir = Path(spec.bindir or f"/usr/lib/postgresql/{spec.version}/bin")
        found = shutil.which("psql") or (str(bindir / "psql") if (bindir / "psql").exists() else None)
        if found is None:
            raise ValueError(f"psql is not installed (neither on PATH nor in {bindir}); install postgresql-client")
        return [found, dsn, *args]

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
    def post_to(self, name: str, path: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """POST to member `name`'s own agent (restart, reload); RuntimeError with its reason if refused or silent."""
        try:
            resp = httpx.post(self.api_url(name) + path, json=body, timeout=timeout,
                              headers={"Authorization": f"Bearer {self.token()}"})
            data = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RuntimeError(f"{name}: the agent did not answer {path}: {exc}") from None
        if resp.status_code >= 400 or not isinstance(data, dict):
            said = data.get("error", resp.text) if isinstance(data, dict) else resp.text
            raise RuntimeError(f"{name} refused {path}: {said}")
        return data

    def postgres_log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.layout.node(name) / "postgres.log").read_text(errors="replace")
        except OSError:
            return "(no postgres.log)"
        return "\n".join(text.splitlines()[-lines:])

    def post_to_any(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a cluster-wide request (it goes to the store) to the first agent that answers."""
        return self._post(path, body)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the first agent that answers; a refusal (4xx, 5xx) is final: every node reads one store."""
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
                data = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            if resp.status_code >= 400 or not isinstance(data, dict):
                raise RuntimeError(f"refused: {data.get('error', resp.text) if isinstance(data, dict) else resp.text}")
            return data
        raise RuntimeError("no agent answered: " + "; ".join(errors) if errors else "no agent is running")

    def get_any(self, path: str) -> dict[str, Any]:
        """GET a cluster-wide read (it comes from the store) from the first agent that answers."""
        errors = []
        for name in self.cluster().member_names():
            if self.agent_pid(name) is None:
                continue
            try:
                resp = httpx.get(self.api_url(name) + path, timeout=3.0)
                data = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"{name}: {exc}")
                continue
            if resp.status_code == 200 and isinstance(data, dict):
                return data
            errors.append(f"{name}: {data.get('error') if isinstance(data, dict) else resp.text}")
        raise RuntimeError("no agent answered: " + "; ".join(errors) if errors else "no agent is running")

    def backup_now(self, kind: str, timeout: float, progress: Callable[[str], None] | None = None) -> Result:
        """Queue a backup for the leader's agent and wait for its result (ok or failed, with pgBackRest's reason)."""
        accepted = self._post("/backup", {"kind": kind, "by": "pgkeel backup now"})["accepted"]
        return wait_for_result(lambda: self.get_any("/backups"), str(accepted["id"]), timeout, progress)

    def request_switchover(self, to: str | None = None, at: float | None = None) -> dict[str, Any]:
        """Record a switchover, at once or scheduled `at` (epoch seconds); RuntimeError with the node's reason if
        refused; the request as recorded."""
        body: dict[str, Any] = {"to": to} if to else {}
        if at is not None:
            body["at"] = at
        accepted: dict[str, Any] = self._post("/switchover", body)["accepted"]
        return accepted

    def cancel_switchover(self) -> dict[str, Any] | None:
        """Remove the pending (scheduled) switchover: the request removed, or None when there was none."""
        cancelled: dict[str, Any] | None = self._post("/switchover/cancel", {}).get("cancelled")
        return cancelled

    def request_reinit(self, name: str) -> dict[str, Any]:
        """Ask member `name`'s own agent to re-clone it from the leader (RuntimeError with its reason if refused)."""
        self.check_member(name)
        accepted: dict[str, Any] = self.post_to(name, "/reinit", {})["accepted"]
        return accepted

    def switchover(self, to: str | None = None, wait: float = 30.0) -> dict[str, Any]:
        return self.wait_for_leader(self.request_switchover(to), wait)

    def failover(self, to: str, force: bool = False) -> dict[str, Any]:
        """The node's answer: {"accepted": request}; RuntimeError with its reason if refused."""
        return self._post("/failover", {"to": to, "force": force})

    def pause(self, until: float | None, reason: str | None = None) -> dict[str, Any]:
        """Maintenance mode (no automatic failover) until `until` (epoch seconds) or resumed; as recorded."""
        body: dict[str, Any] = {"by": f"pgkeel pause ({os.environ.get('USER') or os.getuid()})"}
        if until is not None:
            body["until"] = until
        if reason:
            body["reason"] = reason
        paused: dict[str, Any] = self._post("/pause", body)["paused"]
        return paused

    def resume(self) -> bool:
        """Leave maintenance mode; False when the cluster was not paused."""
        return bool(self._post("/resume", {}).get("was_paused"))

    def history(self) -> list[dict[str, Any]]:
        """Every recorded change of primary, oldest first, from the first agent that answers."""
        for name in self.cluster().member_names():
            if self.agent_pid(name) is None:
                continue
            body = self.fetch(name, "/history", timeout=3.0)
            if body is not None and isinstance(body.get("events"), list):
                return list(body["events"])
        raise RuntimeError("no agent answered; is the cluster running? (`pgkeel status`)")

    def wait_for_leader(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Wait until the request's target (or, without one, another member than its source) is the
        one primary; TimeoutError naming every member's state otherwise."""
        target, source = request.get("to"), request.get("from")
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            primaries = [m["name"] for m in status["members"] if m["role"] == "primary"]
            done = len(primaries) == 1 and status["leader"] == primaries[0]
            if done and (primaries[0] == target if target else primaries[0] != source):
                return status
            if time.monotonic() > deadline:
                summary = ", ".join(f"{m['name']}={m['role']}/{m['state']}" for m in status["members"])
                raise TimeoutError(
                    f"{target or 'another member'} is not the leader after {timeout:g}s (leader: "
                    f"{status['leader'] or 'none'}; {summary}); the leader drops a request it cannot carry "
                    f"out: see {self.layout.root}/nodes/*/agent.log"
                )
            time.sleep(0.1)

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
