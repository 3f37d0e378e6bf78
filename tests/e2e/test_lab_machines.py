"""Three machines without Kubernetes, driven only through the user-facing commands of docs/multi-machine.md.

The lab's network namespaces are the machines (198.18.0.11-13), each with one member of an etcd 3.4
cluster that serves clients over TLS with username/password auth on. ONE document and `pgkeel secrets
init` make the per-member bundles; each machine gets its bundle and runs `pgkeel node run --member NAME`.
Checks: a primary is elected and both replicas stream (over TLS, the API over HTTPS), a second
`node run` of the same member is refused, wrong etcd credentials and an unreachable endpoint are
one clear message each, and killing the primary's agent and postgres leads to a new primary.
Needs root (network namespaces), /usr/bin/etcd and PostgreSQL 15.
"""

from __future__ import annotations

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
import pytest
import yaml

from pgkeel.lab.etcd import EtcdCluster, EtcdServerTls, enable_auth
from pgkeel.lab.netns import SUBNET_PREFIX, Network, lab_lock
from pgkeel.lab.procs import signal_group, signal_tree, spawn, stop
from pgkeel.tls import create_ca, issue_server_certificate

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("ip") is None, reason="needs etcd and iproute2"),
]
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
            "network": {"allowedCidrs": [f"{SUBNET_PREFIX}.0/24"]},
            "store": {"etcd": {"endpoints": [etcd.client_url(i) for i in range(3)], "tls": {"ca": str(ca)},
                               "auth": {"user": "pgkeel", "passwordFile": str(password)}}},
        },
    }


@pytest.fixture(scope="module")
def machines() -> Iterator[Machines]:
    root = Path(tempfile.mkdtemp(prefix="pgkeel-machines-", dir="/tmp"))
    os.chmod(root, 0o755)  # the agents run as postgres
    made: Machines | None = None
    with lab_lock(), Network(3) as net:
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
            made = Machines(root, net, document, root / "secrets" / "ca" / "ca.crt")
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


def test_three_machines_from_one_document_elect_stream_and_fail_over(machines: Machines) -> None:
    made = pgkeel("secrets", "init", "-f", str(machines.document), "--out", str(machines.root / "secrets"))
    assert made.returncode == 0, made.stderr
    for member in MEMBERS:  # "copy DIR/<member>/ to the machine" (here: beside its state)
        shutil.copytree(machines.root / "secrets" / member, machines.bundle(member))
        chown_postgres(machines.bundle(member))
    assert not any((machines.bundle(m) / "ca.key").exists() for m in MEMBERS)

    started = time.monotonic()
    for member in MEMBERS:
        machines.start(member)
    primary = machines.wait_healthy(MEMBERS, timeout=180)
    print(f"\nstart to a healthy 3-machine cluster: {time.monotonic() - started:.1f} s (primary {primary})")

    second = subprocess.run(machines.node_run(primary), capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and "already running" in second.stderr, second.stderr

    proc = machines.agents[primary]
    postmaster = machines.postmaster(primary)
    assert postmaster is not None
    killed = time.monotonic()
    signal_group(proc.pid, signal.SIGKILL)
    signal_tree(postmaster, signal.SIGKILL)
    proc.wait(timeout=10)
    others = [m for m in MEMBERS if m != primary]
    deadline = time.monotonic() + 90
    while True:
        snap = {m: machines.status(m) for m in others}
        new = [m for m, s in snap.items() if s and s.get("role") == "primary" and s.get("is_leader")]
        if new:
            break
        assert time.monotonic() < deadline, snap
        time.sleep(0.2)
    print(f"kill primary {primary} (agent + postgres) to new primary {new[0]}: {time.monotonic() - killed:.1f} s")

    machines.start(primary)  # the old primary comes back as a replica of the new one
    assert machines.wait_healthy(MEMBERS, timeout=180) == new[0]


def test_wrong_etcd_credentials_are_one_message_naming_the_user(machines: Machines) -> None:
    wrong = machines.root / "wrong-password"
    wrong.write_text("not-it\n")
    chown_postgres(wrong)
    data = yaml.safe_load(machines.document.read_text())
    data["spec"]["store"]["etcd"]["auth"]["passwordFile"] = str(wrong)
    document = machines.root / "wrong.yaml"
    document.write_text(yaml.safe_dump(data))
    run = subprocess.run(machines.node_run("db1", document, machines.root / "scratch-1"),
                         capture_output=True, text=True, timeout=60)
    text = " ".join(run.stderr.split())
    assert run.returncode == 1 and "authenticating as 'pgkeel'" in text and "Traceback" not in text, run.stderr


def test_an_unreachable_endpoint_is_one_message_saying_what_to_check(machines: Machines) -> None:
    data = yaml.safe_load(machines.document.read_text())
    data["spec"]["store"]["etcd"]["endpoints"] = [f"https://{SUBNET_PREFIX}.99:2379"]
    document = machines.root / "unreachable.yaml"
    document.write_text(yaml.safe_dump(data))
    run = subprocess.run(machines.node_run("db1", document, machines.root / "scratch-2"),
                         capture_output=True, text=True, timeout=60)
    text = " ".join(run.stderr.split())
    assert run.returncode == 1, run.stderr
    assert f"https://{SUBNET_PREFIX}.99:2379" in text and "Check that etcd runs" in text, run.stderr
    assert "Traceback" not in text
