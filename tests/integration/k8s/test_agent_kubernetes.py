"""Three real `pgkeel agent --kubernetes` processes with real postgres against the fake API server.

The proof of the in-pod agent: configured only from the environment and mounted files, the agents
elect a leader through the Lease, label the pods so the Services would follow, and fail over when
the leader's agent and postgres are killed outright.
"""

from __future__ import annotations

import os
import signal
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


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, cluster: PodCluster) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} not reached within {timeout}s\n{cluster.logs()}")


def healthy(cluster: PodCluster) -> str | None:
    """The leader's name once it is primary and every other pod streams from it; labels included."""
    holder = cluster.lease_holder()
    if holder is None:
        return None
    statuses = {pod: cluster.status(pod) for pod in cluster.names}
    if any(s is None or "postgres" not in s for s in statuses.values()):
        return None  # an agent not answering yet, or before its first loop
    if statuses[holder]["role"] != "primary" or cluster.role_label(holder) != layout.ROLE_PRIMARY:
        return None
    replicas = [p for p in cluster.names if p != holder]
    for pod in replicas:
        pg = statuses[pod]["postgres"]
        if not (pg["in_recovery"] and pg["streaming"]) or cluster.role_label(pod) != layout.ROLE_REPLICA:
            return None
    return holder


def test_three_agents_elect_label_and_fail_over(pod_cluster: Callable[..., PodCluster]) -> None:
    cluster = pod_cluster()
    for pod in cluster.names:
        cluster.start(pod)
    leader = wait_for(lambda: healthy(cluster), 120, "a primary with two streaming replicas", cluster)

    su = cluster.cluster.spec.users.superuser
    password = (cluster.secrets / layout.SUPERUSER_PASSWORD_KEY).read_text().strip()

    def connect(pod: str) -> psycopg.Connection[Any]:
        port = cluster.ports[pod][0]
        return psycopg.connect(host="127.0.0.1", port=port, user=su, password=password, dbname="postgres",
                               connect_timeout=3, autocommit=True)

    with connect(leader) as conn:
        conn.execute("CREATE TABLE t (v int)")
        conn.execute("INSERT INTO t VALUES (1)")
    term = cluster.api.lease("db", layout.leader_lease(cluster.cluster.name))["spec"]["leaseTransitions"]
    assert "pgkeel.dev/status" in cluster.api.pod("db", leader)["metadata"]["annotations"]

    # Crash the leader's node: agent and the whole postgres process group, no goodbye.
    pg_pid = cluster.postgres_pid(leader)
    assert pg_pid is not None
    os.kill(cluster.procs[leader].pid, signal.SIGKILL)
    os.killpg(os.getpgid(pg_pid), signal.SIGKILL)
    cluster.procs[leader].wait(timeout=10)
    killed_at = time.monotonic()

    def new_primary() -> str | None:
        holder = cluster.lease_holder()
        if holder in (None, leader):
            return None
        status = cluster.status(holder)
        if status is None or status.get("role") != "primary" or cluster.role_label(holder) != layout.ROLE_PRIMARY:
            return None
        return holder if cluster.role_label(leader) != layout.ROLE_PRIMARY else None

    successor = wait_for(new_primary, 60, "a new primary holding the lease, with the label moved", cluster)
    elapsed = time.monotonic() - killed_at
    lease = cluster.api.lease("db", layout.leader_lease(cluster.cluster.name))
    assert lease["spec"]["leaseTransitions"] > term
    assert elapsed >= 3 * 0.9, f"promoted {elapsed:.1f}s after the crash: before the 3 s lease could expire"
    others = [p for p in cluster.names if p not in (leader, successor)]
    assert [cluster.role_label(p) for p in others] == [layout.ROLE_REPLICA]
    assert cluster.role_label(leader) is None, "the dead primary's label must not keep -rw pointing at it"
    with connect(successor) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
        conn.execute("INSERT INTO t VALUES (2)")
    assert cluster.api.verbs() <= set(AGENT_API_CALLS)
