"""A pgkeel cluster whose nodes are separate network hosts: agents in namespaces, etcd as the store.

Node i runs `ip netns exec pk…-n<i> python -m pgkeel agent --config FILE` (as root; the agent
drops to the postgres user itself) with postgres on 198.18.0.(11+i):5432 and its API on :8008.
The lab restarts killed agents itself, as `pgkeel up` does for a local cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import yaml

from pgkeel.document import PostgresCluster, load_cluster
from pgkeel.ha.config import AgentConfig
from pgkeel.instance.aside import aside_path
from pgkeel.instance.files import atomic_write
from pgkeel.lab.etcd import EtcdCluster
from pgkeel.lab.netns import HOST_ADDRESS, SUBNET_PREFIX, Network, lab_lock
from pgkeel.lab.procs import alive, signal_group, signal_tree, spawn, stop
from pgkeel.local.layout import Layout, chown_for_postgres
from pgkeel.pgconf import render_config

PG_PORT = 5432
API_PORT = 8008
ETCD_MEMBERS = 3
RULE_IN_LOG = re.compile(r"\[([a-z]+\.[a-z-]+)\]")


@dataclass(frozen=True)
class Timings:
    ttl: float = 3.0
    loop_wait: float = 0.5


def cluster_document(
    mode: str, instances: int = 3, timings: Timings = Timings(), storage: str = "10Gi"
) -> dict[str, Any]:
    """The lab's PostgresCluster. syncStandbys is left to its default, n for 2n+1 instances (1 of 3, 2 of 5).

    `storage` drives the WAL budget: at 1Gi, max_slot_wal_keep_size is about 200 MB (the absent-replica fault).
    """
    replication: dict[str, Any] = {"mode": mode}
    # the lab measures failover, not TLS; the agent-issued certificates need a CA laid out per lab
    spec: dict[str, Any] = {"tls": {"enabled": False}}
    return {
        "apiVersion": "pgkeel.dev/v1alpha1",
        "kind": "PostgresCluster",
        "metadata": {"name": "lab"},
        "spec": spec
        | {
            "instances": instances,
            "postgres": {"version": 15},
            "resources": {"cpu": "1", "memory": "1Gi"},
            "storage": {"size": storage},
            "replication": replication,
            "failover": {"ttlSeconds": timings.ttl, "loopWaitSeconds": timings.loop_wait},
            "network": {"allowedCidrs": [f"{SUBNET_PREFIX}.0/24"]},
        },
    }


class LabCluster:
    """Network + etcd + agents. Context manager: everything goes away on exit, also on errors."""

    def __init__(
        self,
        mode: str,
        instances: int = 3,
        timings: Timings = Timings(),
        keep: bool = False,
        storage: str = "10Gi",
        start_agents: bool = True,
    ) -> None:
        self.mode = mode
        self.instances = instances
        self.timings = timings
        self.keep = keep
        self.storage = storage
        self.start_agents = start_agents  # False: the caller starts them (the kill-bootstrap fault watches that)
        self.root = Path(tempfile.mkdtemp(prefix="pgkeel-lab-"))
        os.chmod(self.root, 0o755)
        self.layout = Layout(self.root)
        self.net = Network(instances)
        # three etcd members (in the first three nodes' namespaces) whatever the cluster size
        self.etcd = EtcdCluster(self.net, self.root / "etcd", members=min(ETCD_MEMBERS, instances))
        self.agents: dict[str, Popen[bytes]] = {}
        self.cluster: PostgresCluster | None = None
        self._lock = lab_lock()
        self._locked = False

    # --- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> LabCluster:
        self._lock.__enter__()
        self._locked = True
        try:
            self.net.__enter__()
            (self.root / "etcd").mkdir()
            self.etcd.start()
            self._prepare()
            if self.start_agents:
                for name in self.names:
                    self.start_agent(name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Agents first (each stops its postgres), then any postgres left behind, etcd, network, files."""
        for proc in self.agents.values():
            stop(proc, timeout=20)
        self.agents.clear()
        if self.cluster is not None:
            for name in self.names:
                pid = self.postgres_pid(name)
                if pid:
                    signal_group(pid, signal.SIGCONT)
                    signal_group(pid, signal.SIGKILL)
        self.etcd.stop()
        self.net.close()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        if self._locked:
            self._locked = False
            self._lock.__exit__(None, None, None)

    def _prepare(self) -> None:
        doc = self.root / "cluster.yaml"
        doc.write_text(yaml.safe_dump(cluster_document(self.mode, self.instances, self.timings, self.storage)))
        cluster = load_cluster(doc)
        self.cluster = cluster
        lay = self.layout
        lay.ensure_dirs(cluster.member_names())
        lay.ensure_secrets(cluster.spec.users.superuser, cluster.spec.users.replication)
        rendered = render_config(cluster, config_dir=str(lay.etc))
        atomic_write(lay.etc / "postgresql.conf", rendered.postgresql_conf, mode=0o644)
        atomic_write(lay.etc / "pg_hba.conf", rendered.pg_hba_conf, mode=0o644)
        bindir = Path(f"/usr/lib/postgresql/{cluster.spec.postgres.version}/bin")
        for i, name in enumerate(cluster.member_names()):
            member = lay.member_dir(name)
            config = AgentConfig(
                name=name,
                dcs_url=self.etcd.url,
                api_host=self.net.address(i),
                api_port=API_PORT,
                api_token_file=lay.token_file,
                advertise_host=self.net.address(i),
                bindir=bindir,
                datadir=member.datadir,
                config_file=lay.etc / "postgresql.conf",
                pg_host=self.net.address(i),
                pg_port=PG_PORT,
                socket_dir=member.run,
                log_file=member.log_file,
                passfile=lay.passfile,
                superuser_password_file=lay.password_file("superuser"),
                replication_password_file=lay.password_file("replication"),
                **AgentConfig.document_fields(cluster),
            )
            atomic_write(lay.agent_config(name), config.model_dump_json(indent=1) + "\n", mode=0o644)

    # --- facts --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        assert self.cluster is not None
        return self.cluster.member_names()

    def index(self, name: str) -> int:
        return self.names.index(name)

    def address(self, name: str) -> str:
        return self.net.address(self.index(name))

    def api_url(self, name: str) -> str:
        return f"http://{self.address(name)}:{API_PORT}"

    def agent_pid(self, name: str) -> int | None:
        proc = self.agents.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    def postgres_pid(self, name: str) -> int | None:
        try:
            pid = int((self.datadir(name) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"postgres" in cmd and alive(pid) else None

    def datadir(self, name: str) -> Path:
        return self.layout.member_dir(name).datadir

    def aside_dir(self, name: str) -> Path:
        """The node's single aside slot (pgkeel.instance.aside): where a re-clone keeps the old data."""
        return aside_path(self.datadir(name))

    def agent_log(self, name: str) -> Path:
        return self.layout.node(name) / "agent.log"

    def log_offsets(self) -> dict[str, int]:
        """Current size of every agent.log, so a trial can read only what its agents logged."""
        out = {}
        for name in self.names:
            try:
                out[name] = self.agent_log(name).stat().st_size
            except OSError:
                out[name] = 0
        return out

    def logged_since(self, offsets: dict[str, int], name: str) -> str:
        try:
            with open(self.agent_log(name), "rb") as f:
                f.seek(offsets.get(name, 0))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def rules_since(self, offsets: dict[str, int]) -> dict[str, list[str]]:
        """Per node, the HA rules its agent logged (`[elect.promote] ...`) since `offsets`, in first-seen order."""
        out: dict[str, list[str]] = {}
        for name in self.names:
            seen: list[str] = []
            for rule in RULE_IN_LOG.findall(self.logged_since(offsets, name)):
                if rule not in seen:
                    seen.append(rule)
            out[name] = seen
        return out

    def password(self) -> str:
        return self.layout.password_file("superuser").read_text().strip()

    def conninfo(self, names: list[str] | None = None, read_write: bool = True) -> str:
        """libpq conninfo from the host: every node (multi-host, read-write) or one node."""
        assert self.cluster is not None
        hosts = ",".join(self.address(n) for n in (names or self.names))
        parts = [
            f"host={hosts}",
            f"port={PG_PORT}",
            f"user={self.cluster.spec.users.superuser}",
            "dbname=postgres",
            f"passfile={self.layout.passfile}",
            "connect_timeout=1",
            # a partitioned or paused server must not hang a client for minutes
            "tcp_user_timeout=1500 keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=2",
            "application_name=pgkeel-lab",
        ]
        if read_write:
            parts.append("target_session_attrs=read-write")
        return " ".join(parts)

    def fetch(self, name: str, timeout: float = 0.3) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = httpx.get(self.api_url(name) + "/status", timeout=timeout).json()
            return data
        except (httpx.HTTPError, ValueError):
            return None

    def snapshot(self) -> dict[str, dict[str, Any] | None]:
        return {name: self.fetch(name) for name in self.names}

    def healthy(self, snap: dict[str, dict[str, Any] | None] | None = None) -> str | None:
        """The leader's name when one primary holds the lease and every other member streams."""
        snap = snap if snap is not None else self.snapshot()
        if any(s is None for s in snap.values()):
            return None
        primaries = [n for n, s in snap.items() if s and s.get("role") == "primary" and s.get("is_leader")]
        streaming = [
            n
            for n, s in snap.items()
            if s and s.get("role") == "replica" and (s.get("postgres") or {}).get("streaming")
        ]
        if len(primaries) == 1 and len(streaming) == len(snap) - 1:
            return primaries[0]
        return None

    def wait_healthy(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            leader = self.healthy()
            if leader:
                return leader
            if time.monotonic() > deadline:
                raise TimeoutError(f"lab cluster not healthy within {timeout:g}s; see {self.root}/nodes/*/agent.log")
            time.sleep(0.1)

    def primary(self) -> str | None:
        for name, s in self.snapshot().items():
            if s and s.get("role") == "primary" and s.get("is_leader"):
                return name
        return None

    # --- control --------------------------------------------------------------------------------
    def start_agent(self, name: str) -> int:
        lay = self.layout
        i = self.index(name)
        log_file = lay.node(name) / "agent.log"
        agent = [sys.executable, "-m", "pgkeel", "agent", "--config", str(lay.agent_config(name))]
        argv = [*self.net.exec_prefix(i), *agent]
        proc = spawn(argv, log_file)
        chown_for_postgres(log_file)
        self.agents[name] = proc
        return proc.pid

    def kill_agent(self, name: str) -> None:
        """SIGKILL the agent and its process group (tools it runs); postgres runs on, in its own session."""
        proc = self.agents.get(name)
        if proc is not None and proc.poll() is None:
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def kill_postgres(self, name: str) -> None:
        """SIGKILL the postmaster and every child (backends call setsid(), so a group kill misses them)."""
        pid = self.postgres_pid(name)
        if pid:
            signal_tree(pid, signal.SIGKILL)

    def kill_node(self, name: str) -> None:
        """Crash the whole node: postgres tree first (so no backend acknowledges anything), then the agent."""
        self.pause(name)
        self.kill_postgres(name)
        self.kill_agent(name)

    def pause(self, name: str, sig: int = signal.SIGSTOP) -> None:
        """SIGSTOP / SIGCONT the agent's and postgres' whole trees."""
        pids = [p for p in (self.agent_pid(name), self.postgres_pid(name)) if p]
        for pid in pids:
            signal_tree(pid, sig)

    def switchover(self) -> None:
        token = self.layout.token_file.read_text().strip()
        errors = []
        for name in self.names:
            try:
                r = httpx.post(
                    self.api_url(name) + "/switchover",
                    json={"to": None},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=2.0,
                )
            except httpx.HTTPError as exc:
                errors.append(f"{name}: {exc}")
                continue
            if r.status_code < 300:
                return
            errors.append(f"{name}: {r.status_code} {r.text.strip()}")
        raise RuntimeError("switchover not accepted: " + "; ".join(errors))

    def ensure_agents(self) -> list[str]:
        """Start every agent that is not running (what `pgkeel up` does on an existing directory)."""
        started = []
        for name in self.names:
            if self.agent_pid(name) is None:
                self.start_agent(name)
                started.append(name)
        return started


__all__ = ["HOST_ADDRESS", "LabCluster", "Timings", "cluster_document"]
