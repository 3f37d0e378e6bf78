"""Rolling updates and drains without an operator: three real agents and postgres against the fake API server.

The fake plays the StatefulSet controller (OnDelete: a deleted pod comes back from the update
revision) and the conftest's kubelet stops a deleted pod's agent with SIGTERM and starts the new
one. What must hold: after a new revision every pod runs it, replaced one at a time, the primary
changed once and by switchover, and every write acknowledged meanwhile is on the new primary; a
SIGTERM of the primary's agent hands the lease over at once, no failover.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from pgkeel.k8s import layout
from pgkeel.k8s.rbac import AGENT_API_CALLS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="agents drop to the postgres user: run as root"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"), reason="needs PostgreSQL 15"),
]

PodCluster = Any  # conftest's class; test modules do not import conftest
NS = "db"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, cluster: PodCluster) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what} not reached within {timeout}s\n{cluster.logs()}")


def healthy(cluster: PodCluster) -> str | None:
    """The leader once it is primary and every other pod streams from it."""
    holder = cluster.lease_holder()
    if holder is None:
        return None
    statuses = {pod: cluster.status(pod) for pod in cluster.names}
    if any(s is None or "postgres" not in s for s in statuses.values()) or statuses[holder]["role"] != "primary":
        return None
    others = [statuses[p]["postgres"] for p in cluster.names if p != holder]
    return holder if all(pg["in_recovery"] and pg["streaming"] for pg in others) else None


def events(cluster: PodCluster) -> list[dict[str, Any]]:
    state = cluster.api.lease(NS, layout.state_lease(cluster.cluster.name)) or {}
    raw = (state.get("metadata", {}).get("annotations") or {}).get("pgkeel.dev/value-events")
    return list(json.loads(raw)["value"]["events"]) if raw else []


class Writer:
    """Inserts 1, 2, 3 … on whoever holds the lease; remembers what was acknowledged without a warning."""

    def __init__(self, cluster: PodCluster) -> None:
        self.cluster = cluster
        self.password = (cluster.secrets / layout.SUPERUSER_PASSWORD_KEY).read_text().strip()
        self.acked: list[int] = []
        self.acked_at: list[float] = []  # monotonic time of each acknowledgement: the write gaps
        self.failures = 0
        self.errors: list[tuple[float, str]] = []  # (monotonic, message) of each failed attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def connect(self, pod: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host="127.0.0.1", port=self.cluster.ports[pod][0],
                               user=self.cluster.cluster.spec.users.superuser, password=self.password,
                               dbname="postgres", connect_timeout=2, autocommit=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        n = 0
        warned: list[str] = []  # notices of the current statement
        while not self._stop.is_set():
            holder = self.cluster.lease_holder()
            if holder is None:
                time.sleep(0.05)
                continue
            warned.clear()
            try:
                with self.connect(holder) as conn:
                    conn.add_notice_handler(lambda diag: warned.append(diag.message_primary or ""))
                    conn.execute("SET statement_timeout = '3s'")
                    while not self._stop.is_set() and self.cluster.lease_holder() == holder:
                        n += 1
                        conn.execute("INSERT INTO t VALUES (%s)", (n,))
                        if not warned:  # a cancelled sync wait commits locally only: not acknowledged
                            self.acked.append(n)
                            self.acked_at.append(time.monotonic())
                        warned.clear()
                        time.sleep(0.02)
            except psycopg.Error as exc:
                self.failures += 1
                self.errors.append((time.monotonic(), str(exc).strip()))
                time.sleep(0.05)


class DownSampler:
    """How many pods are down at once: marked for deletion, absent, or without a running postgres."""

    def __init__(self, cluster: PodCluster) -> None:
        self.cluster = cluster
        self.most = 0
        self.seen: list[tuple[float, frozenset[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> DownSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            down = set()
            for pod in self.cluster.names:
                obj = self.cluster.api.pod(NS, pod)
                if obj is None or obj["metadata"].get("deletionTimestamp") or self.cluster.postgres_pid(pod) is None:
                    down.add(pod)
            if not self.seen or self.seen[-1][1] != frozenset(down):
                self.seen.append((time.monotonic(), frozenset(down)))
            self.most = max(self.most, len(down))
            time.sleep(0.05)


def test_a_new_revision_rolls_one_pod_at_a_time_replicas_first_primary_last(
    pod_cluster: Callable[..., PodCluster],
) -> None:
    cluster = pod_cluster()
    cluster.run_kubelet()
    for pod in cluster.names:
        cluster.start(pod)
    first = wait_for(lambda: healthy(cluster), 60, "a primary with two streaming replicas", cluster)
    writer = Writer(cluster)
    with writer.connect(first) as conn:
        conn.execute("CREATE TABLE t (v int PRIMARY KEY)")
    term = cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name))["spec"]["leaseTransitions"]
    before = len(events(cluster))
    old = cluster.revision(first)
    new = f"{cluster.cluster.name}-5b7c9d6f4a"
    writer.start()
    sampler = DownSampler(cluster).start()
    time.sleep(0.5)

    started = time.monotonic()
    cluster.api.set_update_revision(NS, cluster.cluster.name, new)  # `kubectl apply` of a new image, say

    def rolled() -> str | None:
        if any(cluster.revision(p) != new for p in cluster.names):
            return None
        lock = cluster.api.lease(NS, f"{cluster.cluster.name}-roll") or {}
        return healthy(cluster) if not (lock.get("spec") or {}).get("holderIdentity") else None

    last = wait_for(rolled, 75, "every pod on the new revision, healthy, the roll lock free", cluster)
    took = time.monotonic() - started
    time.sleep(0.5)
    writer.stop()
    sampler.stop()

    order = [pod for _, event, pod in cluster.kubelet_log if event == "terminating"]
    for pod in cluster.names:  # the steps as the agents logged them (shown with -s)
        log = (cluster.base / pod / "agent.log").read_text().splitlines()
        print("\n".join(line for line in log if "[roll." in line or "switchover" in line))
    print(f"\nroll of {len(cluster.names)} pods: {took:.1f} s; order {order}; {len(writer.acked)} writes "
          f"acknowledged, {writer.failures} failed attempts; down sets {[sorted(d) for _, d in sampler.seen]}")
    assert old != new
    assert sampler.most <= 1, f"two pods down at once: {sampler.seen}"
    replicas = [p for p in reversed(cluster.names) if p != first]
    assert order == [*replicas, first], "replicas by highest ordinal first, the primary last"
    assert last != first
    changes = events(cluster)[before:]
    assert [e["kind"] for e in changes] == ["switchover"], changes
    lease = cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name))["spec"]
    assert lease["leaseTransitions"] == term + 1, "one change of primary, handed over (no election)"
    with writer.connect(last) as conn:
        present = {v for (v,) in conn.execute("SELECT v FROM t").fetchall()}
    assert writer.acked and set(writer.acked) <= present, "an acknowledged write is missing"
    sts = cluster.api.get("apps", "statefulsets", NS, cluster.cluster.name)
    assert sts["status"]["currentRevision"] == new and sts["status"]["updatedReplicas"] == 3
    assert cluster.api.verbs() <= set(AGENT_API_CALLS)
    assert ("", "pods", "delete") in cluster.api.verbs()


def test_sigterm_of_the_primary_hands_over_before_postgres_stops(pod_cluster: Callable[..., PodCluster]) -> None:
    cluster = pod_cluster()
    for pod in cluster.names:
        cluster.start(pod)
    leader = wait_for(lambda: healthy(cluster), 60, "a primary with two streaming replicas", cluster)
    term = cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name))["spec"]["leaseTransitions"]
    before = len(events(cluster))
    proc = cluster.procs[leader]

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # what the kubelet does when the pod is deleted or evicted

    def new_primary() -> str | None:
        holder = cluster.lease_holder()
        status = cluster.status(holder) if holder not in (None, leader) else None
        return holder if status is not None and status.get("role") == "primary" else None

    successor = wait_for(new_primary, 20, "a new primary", cluster)
    took = time.monotonic() - started
    proc.wait(timeout=30)
    print(f"\nSIGTERM of the primary {leader}: {successor} leads after {took:.2f} s")
    lease = cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name))["spec"]
    assert lease["leaseTransitions"] == term + 1
    assert [e["kind"] for e in events(cluster)[before:]] == ["switchover"]
    assert took < cluster.cluster.spec.failover.ttl_seconds, "within the lease's ttl: nobody waited for it to expire"
    log = (cluster.base / leader / "agent.log").read_text()
    assert "drain.hand-over" in log and "handed the lease to" in log
