"""Fixtures for the DCS contract: one `backend` fixture parametrized over every real store.

Adding a backend = writing a class with `name`, `open(scope, timeout)` and `outage()`, a
fixture returning it, and its name in BACKENDS. etcd runs for real (/usr/bin/etcd) on
loopback with free ports and a temporary data dir, and is stopped by PID at teardown.
kubernetes runs against the in-process fake API server (tests/fakes/kube_api.py), one per test.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from pgkeel.dcs.base import DCS
from pgkeel.dcs.etcd import EtcdDCS
from pgkeel.dcs.k8s_client import Endpoint
from pgkeel.dcs.k8s_contract import AGENT_API_CALLS, common_labels, selector_labels
from pgkeel.dcs.kubernetes import KubernetesDCS
from pgkeel.dcs.sqlite import SQLiteDCS

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for the `fakes` package
from fakes.kube_api import FakeKubeApi

ETCD_BIN = "/usr/bin/etcd"
BACKENDS = ["sqlite", "etcd", "kubernetes"]
K8S_NAMESPACE = "pgkeel-test"
K8S_MEMBERS = [*(f"n{i}" for i in range(8)), "m"]  # every member name the contract suite uses


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    """One real single-node etcd; fast election settings so a 1 s lease is allowed."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self) -> None:
        for attempt in range(3):  # a free port may be taken between probing and binding
            client, peer = free_port(), free_port()
            data = self.base / f"data{attempt}"
            self.endpoint = f"127.0.0.1:{client}"
            log = (self.base / f"etcd{attempt}.log").open("wb")
            self.proc = subprocess.Popen(
                [
                    ETCD_BIN,
                    "--name=test",
                    f"--data-dir={data}",
                    f"--listen-client-urls=http://127.0.0.1:{client}",
                    f"--advertise-client-urls=http://127.0.0.1:{client}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster=test=http://127.0.0.1:{peer}",
                    "--heartbeat-interval=10",
                    "--election-timeout=100",  # minimum lease TTL = ceil(1.5 x 0.1 s) = 1 s
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            if self._wait_ready(deadline=time.monotonic() + 15):
                return
            self.stop()
        raise RuntimeError(f"etcd did not start; see logs in {self.base}")

    def _wait_ready(self, deadline: float) -> bool:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                answer = httpx.post(f"http://{self.endpoint}/v3/kv/range", json={"key": "AA=="}, timeout=0.5)
                if answer.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return False

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)  # a paused etcd cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class Backend(Protocol):
    """What the contract suite needs from a store under test."""

    name: str

    def open(self, scope: str, timeout: float = 1.0) -> DCS: ...

    def outage(self) -> AbstractContextManager[None]:
        """While inside, the store is up but does not answer (a stuck or frozen server)."""
        ...


class SQLiteBackend:
    """One shared DB file per test; an outage is a stuck writer holding the lock."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, scope: str, timeout: float = 1.0) -> DCS:
        return SQLiteDCS(self.path, scope, timeout)

    @contextmanager
    def outage(self) -> Iterator[None]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            yield
        finally:
            conn.rollback()
            conn.close()


class EtcdBackend:
    """The session's etcd; an outage is the etcd process frozen by SIGSTOP."""

    name = "etcd"

    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    def open(self, scope: str, timeout: float = 1.0) -> DCS:
        return EtcdDCS([self.server.endpoint], scope, timeout)

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.server.pause()
        try:
            yield
        finally:
            self.server.resume()


class KubernetesBackend:
    """A fake API server per test; member pods exist up front, as a StatefulSet would create them.

    Both clusters of the scope-isolation test share one namespace, so isolation is by lease names
    and the pods' selector labels, as between two clusters in one real namespace.
    """

    name = "kubernetes"

    def __init__(self, api: FakeKubeApi, token_file: Path) -> None:
        self.api = api
        self.endpoint = Endpoint(api.url, token_file)
        self._scopes: set[str] = set()  # a plain set: forked children must not touch the fake's locks

    def add_pods(self, scope: str) -> None:
        if scope in self._scopes:
            return
        self._scopes.add(scope)
        labels = {**common_labels(scope), **selector_labels(scope)}
        for name in K8S_MEMBERS:
            if self.api.pod(K8S_NAMESPACE, name) is None:
                self.api.create_pod(K8S_NAMESPACE, name, labels)

    def open(self, scope: str, timeout: float = 1.0) -> DCS:
        self.add_pods(scope)
        return KubernetesDCS(self.endpoint, K8S_NAMESPACE, scope, timeout)

    def outage(self) -> AbstractContextManager[None]:
        return self.api.outage("hang")


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def dead_endpoint() -> str:
    """host:port where nothing listens: connections are refused."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> SQLiteBackend:
    return SQLiteBackend(tmp_path / "dcs.db")


@pytest.fixture
def etcd_backend(etcd_server: EtcdServer) -> EtcdBackend:
    return EtcdBackend(etcd_server)


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kubernetes_backend(kube_api: FakeKubeApi, tmp_path: Path, scope: str) -> Iterator[KubernetesBackend]:
    token = tmp_path / "token"
    token.write_text(kube_api.token + "\n")
    backend = KubernetesBackend(kube_api, token)
    backend.add_pods(scope)
    yield backend
    unexpected = kube_api.verbs() - set(AGENT_API_CALLS)
    assert not unexpected, f"calls outside the agent's Role: {sorted(unexpected)}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def scope() -> str:
    """A fresh cluster name per test, so tests sharing one etcd never see each other."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_store(backend: Backend, scope: str) -> Iterator[Callable[..., DCS]]:
    """Open stores (one per simulated node) on this test's scope; all closed at teardown."""
    opened: list[DCS] = []

    def _open(timeout: float = 1.0, scope_: str | None = None) -> DCS:
        store = backend.open(scope_ or scope, timeout)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()
