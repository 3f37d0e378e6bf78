"""HAProxy in front of a local cluster, run from a Patroni-style config such as examples/haproxy.cfg.

Why: the e2e test, the switchover benchmark and the documentation must use one config the same way,
so the documented config is the tested one. The config takes every address from HAProxy's own
`${...}` environment expansion (`haproxy_env`); HAProxy runs in the foreground (`-db`) as a child
of this process and is stopped by its PID, never by name.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pgkeel.local.cluster import HOST, LocalCluster
from pgkeel.local.layout import free_port

SERVERS = 3  # examples/haproxy.cfg lists node0..node2


def haproxy_env(cluster: LocalCluster, rw_port: int, ro_port: int, stats_socket: Path) -> dict[str, str]:
    """The variables examples/haproxy.cfg reads: its listen ports and each member's postgres and API port."""
    names = cluster.cluster().member_names()
    if len(names) != SERVERS:
        raise ValueError(
            f"the cluster has {len(names)} members but the HAProxy config lists {SERVERS} servers: "
            f"add or remove `server nodeN …` lines in both listen sections"
        )
    state = cluster.layout.load_state()
    env = {
        "PGKEEL_HAPROXY_HOST": HOST,
        "PGKEEL_RW_PORT": str(rw_port),
        "PGKEEL_RO_PORT": str(ro_port),
        "PGKEEL_HAPROXY_SOCKET": str(stats_socket),
    }
    for i, name in enumerate(names):
        env[f"PGKEEL_NODE{i}_HOST"] = HOST
        env[f"PGKEEL_NODE{i}_PG_PORT"] = str(state["pg_ports"][name])
        env[f"PGKEEL_NODE{i}_API_PORT"] = str(state["api_ports"][name])
    return env


def server_names(cluster: LocalCluster) -> dict[str, str]:
    """HAProxy's server name (node0 …) for each member, in member order as haproxy_env numbers them."""
    return {f"node{i}": name for i, name in enumerate(cluster.cluster().member_names())}


class HAProxy:
    """One haproxy process: `start()` waits until both listen ports accept; `stop()` ends it by PID."""

    def __init__(self, config: Path, cluster: LocalCluster, workdir: Path) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise FileNotFoundError("haproxy is not installed: run scripts/setup.sh (Debian package haproxy)")
        self.binary = binary
        self.config = config
        self.workdir = workdir
        state = cluster.layout.load_state()
        taken = {*state["pg_ports"].values(), *state["api_ports"].values()}  # stopped nodes keep theirs
        self.rw_port = free_port(HOST, taken)
        self.ro_port = free_port(HOST, taken | {self.rw_port})
        self.stats_socket = workdir / "haproxy.sock"
        self.log = workdir / "haproxy.log"
        self.env = haproxy_env(cluster, self.rw_port, self.ro_port, self.stats_socket)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> HAProxy:
        check = subprocess.run([self.binary, "-c", "-q", "-f", str(self.config)], env={**os.environ, **self.env},
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise ValueError(f"{self.config} is not a valid HAProxy config: {check.stderr.strip() or check.stdout}")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # no shell: the argv is fixed, the addresses come from env
                [self.binary, "-db", "-f", str(self.config)], env={**os.environ, **self.env},
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not (self._accepts(self.rw_port) and self._accepts(self.ro_port) and self.stats_socket.exists()):
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"haproxy did not listen within {timeout:g}s: {self.log_tail()}")
            time.sleep(0.05)
        return self

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)  # in -db mode: stop now, closing every proxied session
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def servers(self, listen: str) -> dict[str, str]:
        """HAProxy's state of each server of one listen section now ("UP", "DOWN", "UP 1/2" …), from `show stat`."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == listen and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_servers(self, listen: str, up: set[str], timeout: float = 15.0) -> dict[str, str]:
        """Wait until exactly `up` (HAProxy server names) are UP in `listen` and the others DOWN (a server
        "UP 1/2", one failed check into going down, still gets sessions); TimeoutError with the states."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.servers(listen)
            settled = all(state == "UP" if name in up else state.startswith("DOWN") for name, state in states.items())
            if settled and up <= set(states):
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"{listen}: wanted {sorted(up)} UP, HAProxy has {states}: {self.log_tail()}")
            time.sleep(0.1)
