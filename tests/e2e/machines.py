"""Three machines (network namespaces) with a TLS + auth etcd 3.4 cluster and one document, for the
e2e tests that drive them only through user-facing commands (test_lab_machines, test_remote_machines).

`three_machines(subnet)` makes them on one /24 of 198.18.0.0/15 under that /24's lab lock, so a
test on another /24 runs beside a lab holding 198.18.0.0/24; everything it made is removed on exit.
Needs root (network namespaces), /usr/bin/etcd and PostgreSQL 15.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from pgkeel.lab.etcd import EtcdCluster, EtcdServerTls, enable_auth
from pgkeel.lab.netns import Network, lab_lock
from pgkeel.lab.procs import signal_tree, spawn, stop
from pgkeel.tls import create_ca, issue_server_certificate

MEMBERS = ["db1", "db2", "db3"]
API_PORT = 8008


def pgkeel(*args: str, prefix: list[str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "pgkeel", *args],
                          capture_output=True, text=True, timeout=timeout)


def chown_postgres(path: Path) -> None:
    """The install step of the docs: a member's bundle belongs to the user the agent runs as."""
    subprocess.run(["chown", "-R", "postgres:postgres", str(path)], check=True)


@dataclass
class Machines:
    root: Path
    net: Network
    document: Path
    ca: Path  # the cluster CA certificate (secrets/ca/ca.crt), what a person verifies the APIs with
    etcd: EtcdCluster  # one member per machine; fault tests signal, restart and partition its members
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def address(self, member: str) -> str:
        return self.net.address(MEMBERS.index(member))

    def state(self, member: str) -> Path:
        return self.root / f"machine-{member}" / "state"

    def bundle(self, member: str) -> Path:
        return self.root / f"machine-{member}" / "bundle"

    def node_run(self, member: str, document: Path | None = None, state: Path | None = None) -> list[str]:
        return [*self.net.exec_prefix(MEMBERS.index(member)), sys.executable, "-m", "pgkeel", "node", "run",
                "-f", str(document or self.document), "--member", member, "--dir", str(state or self.state(member)),
                "--secrets", str(self.bundle(member))]

    def install(self) -> subprocess.CompletedProcess[str]:
        """`pgkeel secrets init`, then each member's bundle copied to its machine and given to postgres."""
        made = pgkeel("secrets", "init", "-f", str(self.document), "--out", str(self.secrets))
        if made.returncode == 0:
            for member in MEMBERS:  # "copy DIR/<member>/ to the machine" (here: beside its state)
                shutil.copytree(self.secrets / member, self.bundle(member))
                chown_postgres(self.bundle(member))
        return made

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"  # `secrets init --out`: what stays on the operator's machine

    def start(self, member: str) -> None:
        self.agents[member] = spawn(self.node_run(member), self.root / f"{member}.log")

    def status(self, member: str) -> dict[str, Any] | None:
        try:
            verify = ssl.create_default_context(cafile=str(self.ca))
            body = httpx.get(f"https://{self.address(member)}:{API_PORT}/status", verify=verify, timeout=1.0).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def postmaster(self, member: str) -> int | None:
        try:
            return int((self.state(member) / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def healthy(self, members: list[str]) -> str | None:
        """The primary when exactly one member leads and every other one streams."""
        snap = {m: self.status(m) for m in members}
        leaders = [m for m, s in snap.items() if s and s.get("role") == "primary" and s.get("is_leader")]
        streaming = [m for m, s in snap.items()
                     if s and s.get("role") == "replica" and (s.get("postgres") or {}).get("streaming")]
        return leaders[0] if len(leaders) == 1 and len(streaming) == len(members) - 1 else None

    def wait_healthy(self, members: list[str], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (leader := self.healthy(members)) is None:
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {m}\n" + (self.root / f"{m}.log").read_text(errors="replace")[-3000:]
                                 for m in MEMBERS)
                raise AssertionError(f"not healthy within {timeout:g}s\n{logs}")
            time.sleep(0.2)
        return leader


def _document(net: Network, etcd: EtcdCluster, ca: Path, password: Path) -> dict[str, Any]:
    return {
        "apiVersion": "pgkeel.dev/v1alpha1",
        "kind": "PostgresCluster",
        "metadata": {"name": "shop"},
        "spec": {
            "instances": 3,
            "members": [{"name": m, "host": net.address(i)} for i, m in enumerate(MEMBERS)],
            "network": {"allowedCidrs": [f"{net.subnet}.0/24"]},
            "store": {"etcd": {"endpoints": [etcd.client_url(i) for i in range(3)], "tls": {"ca": str(ca)},
                               "auth": {"user": "pgkeel", "passwordFile": str(password)}}},
        },
    }


@contextlib.contextmanager
def three_machines(subnet: str) -> Iterator[Machines]:
    """Three namespaces on `subnet` (e.g. "198.18.5"), etcd on each with TLS and auth, the document written;
    the members are not started (a test does that with `pgkeel node run`, as a person would)."""
    root = Path(tempfile.mkdtemp(prefix="pgkeel-machines-", dir="/tmp"))
    os.chmod(root, 0o755)  # the agents run as postgres
    made: Machines | None = None
    with lab_lock(subnet), Network(3, subnet=subnet) as net:
        etcd_ca = create_ca("etcd")
        (root / "etcd").mkdir()
        (root / "etcd-ca.crt").write_bytes(etcd_ca.cert_pem)
        pairs = []
        for i in range(3):
            cert, key = issue_server_certificate(etcd_ca, f"etcd{i}", [net.address(i)], client_auth=True)
            pair = (root / "etcd" / f"etcd{i}.crt", root / "etcd" / f"etcd{i}.key")
            pair[0].write_bytes(cert)
            pair[1].write_bytes(key)
            pairs.append(pair)
        etcd = EtcdCluster(net, root / "etcd", members=3, tls=EtcdServerTls(root / "etcd-ca.crt", pairs))
        try:
            etcd.start()
            verify = ssl.create_default_context(cafile=str(root / "etcd-ca.crt"))
            enable_auth(etcd.client_url(0), verify, "root-secret", "pgkeel", "pgkeel-secret", "/pgkeel/shop/")
            password = root / "etcd-password"
            password.write_text("pgkeel-secret\n")
            os.chmod(password, 0o600)
            chown_postgres(password)
            document = root / "cluster.yaml"
            document.write_text(yaml.safe_dump(_document(net, etcd, root / "etcd-ca.crt", password)))
            made = Machines(root, net, document, root / "secrets" / "ca" / "ca.crt", etcd)
            yield made
        finally:
            if made is not None:
                for proc in made.agents.values():
                    stop(proc, timeout=30)
                for member in MEMBERS:
                    pid = made.postmaster(member)
                    if pid and Path(f"/proc/{pid}").exists():
                        signal_tree(pid, signal.SIGKILL)
            etcd.stop()
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_machines(subnet: str) -> Iterator[Machines]:
    """`three_machines` installed as the docs say, `pgkeel node run` on each, and healthy (1 primary, 2 streaming)."""
    with three_machines(subnet) as machines:
        made = machines.install()
        assert made.returncode == 0, made.stderr
        for member in MEMBERS:
            machines.start(member)
        machines.wait_healthy(MEMBERS, timeout=180)
        yield machines
