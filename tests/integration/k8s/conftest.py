"""Fixtures for the in-pod agent: the fake API server, and pods-on-loopback running `pgkeel agent --kubernetes`.

A `PodCluster` lays out what a StatefulSet would give each pod (config mount, Secret files, data
volume, downward-API env) in a temp dir, with distinct loopback ports per pod, creates the pods in
the fake API, and runs one real agent process per pod. Everything it starts is stopped by PID at
teardown, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pgkeel.backup import ConfPaths
from pgkeel.document import PostgresCluster, load_cluster
from pgkeel.k8s import layout
from pgkeel.k8s.backups import pgbackrest_conf
from pgkeel.local.layout import chown_for_postgres, free_port
from pgkeel.pgconf import render_config
from pgkeel.tls import create_ca

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for the `fakes` package
from fakes.kube_api import FakeKubeApi

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "db"
REVISION = "6d4f8d9c8b"  # the pods' first controller-revision-hash suffix
FAST_FAILOVER = {"ttlSeconds": 3, "loopWaitSeconds": 0.5}  # what most tests run with: quick failovers


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    api = FakeKubeApi(token=secrets.token_urlsafe(16)).start()
    try:
        yield api
    finally:
        api.stop()


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still alive")
        time.sleep(0.01)


class PodCluster:
    """N pods' worth of files, env and agent processes for one cluster document, on 127.0.0.1."""

    def __init__(
        self,
        api: FakeKubeApi,
        base: Path,
        name: str = "kc",
        instances: int = 3,
        backup: dict[str, Any] | None = None,
        failover: dict[str, Any] | None = FAST_FAILOVER,
    ) -> None:
        """failover: the document's spec.failover; None leaves it out, so the defaults apply."""
        self.api, self.base = api, base
        doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
        doc["metadata"].update(name=name, namespace=NAMESPACE)
        doc["spec"].update(instances=instances, resources={"cpu": "1", "memory": "512Mi"})
        doc["spec"].pop("failover", None)
        if failover is not None:
            doc["spec"]["failover"] = dict(failover)
        if backup is not None:
            doc["spec"]["backup"] = backup
        self.extra_env: dict[str, str] = {}  # what the container's env adds (the backup Secret's variables)
        self.etc, self.secrets = base / "etc", base / "secrets"
        for path in (self.etc, self.secrets):
            path.mkdir(mode=0o755)
        (self.etc / "cluster.yaml").write_text(yaml.safe_dump(doc))
        self.cluster: PostgresCluster = load_cluster(self.etc / "cluster.yaml")
        rendered = render_config(self.cluster, config_dir=str(self.etc))
        (self.etc / "postgresql.conf").write_text(rendered.postgresql_conf)
        (self.etc / "pg_hba.conf").write_text(rendered.pg_hba_conf)
        if self.cluster.spec.backup is not None:  # the ConfigMap's file, with this machine's log and lock paths
            paths = ConfPaths(log_path=base / "backup" / "log", lock_path=base / "backup" / "lock")
            for directory in (base / "backup", paths.log_path, paths.lock_path):
                directory.mkdir(mode=0o755)
                chown_for_postgres(directory)
            (self.etc / layout.PGBACKREST_KEY).write_text(pgbackrest_conf(self.cluster, paths))
        os.chmod(self.secrets, 0o700)
        chown_for_postgres(self.secrets)
        if self.cluster.spec.tls.enabled:
            create_ca(name).save(self.secrets / "ca.crt", self.secrets / "ca.key")
            for key in ("ca.crt", "ca.key"):
                chown_for_postgres(self.secrets / key)
        passwords = [k for k in layout.SECRET_KEYS if k not in (layout.CA_CERT_KEY, layout.CA_KEY_KEY)]
        for key in (*passwords, "k8s-token"):
            value = api.token if key == "k8s-token" else secrets.token_urlsafe(24)
            path = self.secrets / key
            path.write_text(value + "\n")
            os.chmod(path, 0o600)
            chown_for_postgres(path)
        self.names = self.cluster.member_names()
        self.ports = {n: (free_port(), free_port()) for n in self.names}  # (postgres, api)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        labels = {**layout.common_labels(name), **layout.selector_labels(name)}
        # The pods as the StatefulSet controller makes them (owner, revision label, on a node).
        api.create_stateful_set(NAMESPACE, name, instances, labels, revision=f"{name}-{REVISION}")
        for pod in self.names:
            (base / pod).mkdir(mode=0o755)
            chown_for_postgres(base / pod)
        self.kubelet_log: list[tuple[float, str, str]] = []  # (monotonic, event, pod) of the kubelet's work
        self._kubelet_stop = threading.Event()
        self._kubelet: threading.Thread | None = None

    def pgdata(self, pod: str) -> Path:
        return self.base / pod / "pgdata"

    def env(self, pod: str) -> dict[str, str]:
        pg_port, api_port = self.ports[pod]
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "PYTHONPATH")}
        return keep | {
            layout.ENV_POD_NAME: pod,
            layout.ENV_POD_NAMESPACE: NAMESPACE,
            layout.ENV_POD_IP: "127.0.0.1",
            layout.ENV_CLUSTER: self.cluster.name,
            layout.ENV_PGDATA: str(self.pgdata(pod)),
            "PGKEEL_CONFIG_DIR": str(self.etc),
            "PGKEEL_SECRETS_DIR": str(self.secrets),
            "PGKEEL_SOCKET_DIR": str(self.base / pod / "run"),
            "PGKEEL_API_PORT": str(api_port),
            "PGKEEL_PG_PORT": str(pg_port),
            "PGKEEL_PG_HOST": "127.0.0.1",
            "PGKEEL_ADVERTISE_HOST": "127.0.0.1",
            "PGKEEL_K8S_API": self.api.url,
            "PGKEEL_K8S_TOKEN_FILE": str(self.secrets / "k8s-token"),
            **self.extra_env,
        }

    def start(self, pod: str) -> int:
        log = open(self.base / pod / "agent.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pgkeel", "agent", "--kubernetes"],
                env=self.env(pod),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        finally:
            log.close()
        self.procs[pod] = proc
        return proc.pid

    def postgres_pid(self, pod: str) -> int | None:
        try:
            pid = int((self.pgdata(pod) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def status(self, pod: str) -> dict[str, Any] | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.ports[pod][1]}/status", timeout=1.0).json()  # type: ignore[no-any-return]
        except (httpx.HTTPError, ValueError):
            return None

    def role_label(self, pod: str) -> str | None:
        obj = self.api.pod(NAMESPACE, pod) or {}
        return (obj.get("metadata", {}).get("labels") or {}).get(layout.ROLE_LABEL)

    def lease_holder(self) -> str | None:
        lease = self.api.lease(NAMESPACE, layout.leader_lease(self.cluster.name)) or {}
        return (lease.get("spec") or {}).get("holderIdentity")

    def logs(self) -> str:
        parts = []
        for pod in self.ports:  # every pod that ever ran, also those scaled away
            for name in ("agent.log", "postgres.log"):
                path = self.base / pod / name
                if path.exists():
                    parts.append(f"--- {pod}/{name} (tail)\n" + "\n".join(path.read_text().splitlines()[-40:]))
        return "\n".join(parts)

    # --- the kubelet: what happens to a pod the API marked for deletion -------------------------------
    def run_kubelet(self, grace: float = 40.0) -> None:
        """Stop the agent of every pod marked for deletion (SIGTERM, SIGKILL after `grace`), finish the deletion
        (the fake's controller recreates the pod from the update revision) and start the new pod's agent."""
        self._kubelet = threading.Thread(target=self._kubelet_loop, args=(grace,), name="kubelet", daemon=True)
        self._kubelet.start()

    def add_pod(self, pod: str) -> None:
        """Lay out a pod the controller created past the first ones (`kubectl scale`): ports, volume directory."""
        self.ports[pod] = (free_port(), free_port())
        (self.base / pod).mkdir(mode=0o755, exist_ok=True)
        chown_for_postgres(self.base / pod)
        self.names = [*self.names, pod]  # rebound, not mutated: tests iterate it meanwhile

    def _kubelet_loop(self, grace: float) -> None:
        handled: set[str] = set()  # pod uids whose stop has begun
        while not self._kubelet_stop.is_set():
            for obj in self.api.pods(NAMESPACE):  # new ordinals (`kubectl scale`): schedule and start them
                pod = obj["metadata"]["name"]
                if pod not in self.ports and not obj["metadata"].get("deletionTimestamp"):
                    self.add_pod(pod)
                    self.start(pod)
                    self.kubelet_log.append((time.monotonic(), "started", pod))
            for obj in self.api.terminating_pods(NAMESPACE):
                pod, uid = obj["metadata"]["name"], obj["metadata"]["uid"]
                if uid not in handled:
                    handled.add(uid)
                    self.kubelet_log.append((time.monotonic(), "terminating", pod))
                    threading.Thread(target=self._replace, args=(pod, grace), daemon=True).start()
            time.sleep(0.05)

    def _replace(self, pod: str, grace: float) -> None:
        proc = self.procs.get(pod)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        pid = self.postgres_pid(pod)
        if pid is not None:  # the container's cgroup goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            wait_gone(pid)
        self.kubelet_log.append((time.monotonic(), "stopped", pod))
        self.api.finish_pod_deletion(NAMESPACE, pod)
        if self.api.pod(NAMESPACE, pod) is None:  # scaled down: the controller does not recreate it
            self.names = [n for n in self.names if n != pod]
        elif not self._kubelet_stop.is_set():
            self.start(pod)
            self.kubelet_log.append((time.monotonic(), "started", pod))

    def revision(self, pod: str) -> str | None:
        obj = self.api.pod(NAMESPACE, pod) or {}
        return (obj.get("metadata", {}).get("labels") or {}).get("controller-revision-hash")

    def stop(self) -> None:
        """SIGTERM every agent (it stops its postgres), then SIGKILL whatever is left, by PID."""
        self._kubelet_stop.set()
        if self._kubelet is not None:
            self._kubelet.join(timeout=5)
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for pod in self.ports:  # also pods scaled away meanwhile
            pid = self.postgres_pid(pod)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(os.getpgid(pid), signal.SIGKILL)
                wait_gone(pid)


@pytest.fixture
def pod_cluster(kube_api: FakeKubeApi) -> Iterator[Callable[..., PodCluster]]:
    made: list[PodCluster] = []

    def make(**kwargs: Any) -> PodCluster:
        base = Path(tempfile.mkdtemp(prefix="pgkeel-k8s-", dir="/tmp"))
        os.chmod(base, 0o755)  # the agents drop to the postgres user
        cluster = PodCluster(kube_api, base, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(cluster.base, ignore_errors=True)
