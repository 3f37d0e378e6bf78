"""Scaling without an operator: `kubectl scale` of the StatefulSet 3 → 4 (refused) → 5 → 3, real agents and postgres.

The fake API plays the StatefulSet controller (podManagementPolicy Parallel: missing ordinals created
at once, those past replicas deleted) and the conftest's kubelet starts and stops the pods' agents.
What must hold: an even count is never recorded (the membership stays, the agents warn); at 5 the new
members clone, stream and the sync rule becomes ANY 2 of the 4 others; back at 3 the membership is 3
members with k 1 and the removed members' slots are gone on the primary; every write acknowledged
meanwhile is on the primary at the end.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_roll_kubernetes import NS, PodCluster, Writer, events, wait_for

from pgkeel.instance import slot_name_for
from pgkeel.k8s import layout
from pgkeel.k8s.rbac import AGENT_API_CALLS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="agents drop to the postgres user: run as root"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"), reason="needs PostgreSQL 15"),
]


def membership(cluster: PodCluster) -> dict[str, Any] | None:
    state = cluster.api.lease(NS, layout.state_lease(cluster.cluster.name)) or {}
    raw = (state.get("metadata", {}).get("annotations") or {}).get("pgkeel.dev/value-config")
    value = json.loads(raw)["value"] if raw else {}
    found = value.get("membership")
    return found if isinstance(found, dict) else None


def sync_names(cluster: PodCluster) -> str:
    holder = cluster.lease_holder()
    status = cluster.status(holder) if holder else None
    return str(((status or {}).get("postgres") or {}).get("sync_standby_names") or "")


def all_streaming(cluster: PodCluster, pods: list[str]) -> bool:
    holder = cluster.lease_holder()
    if holder is None or set(pods) != set(cluster.names):
        return False
    for pod in pods:
        if pod == holder:
            continue
        pg = (cluster.status(pod) or {}).get("postgres") or {}
        if not (pg.get("in_recovery") and pg.get("streaming")):
            return False
    return True


def slots(writer: Writer, pod: str) -> set[str]:
    with writer.connect(pod) as conn:
        return {name for (name,) in conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall()}


def three_pods(pod_cluster: Callable[..., PodCluster]) -> tuple[PodCluster, str]:
    """Three pods under the kubelet (which also starts the pods a scale-up adds), healthy; and the leader."""
    cluster = pod_cluster()
    cluster.run_kubelet()
    for pod in cluster.names:
        cluster.start(pod)
    first = list(cluster.names)
    leader = wait_for(lambda: all_streaming(cluster, first) and cluster.lease_holder(), 60,
                      "a primary with two streaming replicas", cluster)
    return cluster, str(leader)


def test_kubectl_scale_changes_the_membership_3_to_5_to_3_and_refuses_4(
    pod_cluster: Callable[..., PodCluster],
) -> None:
    cluster, leader = three_pods(pod_cluster)
    name = cluster.cluster.name
    three, five = [f"{name}-{i}" for i in range(3)], [f"{name}-{i}" for i in range(5)]
    writer = Writer(cluster)
    with writer.connect(leader) as conn:
        conn.execute("CREATE TABLE t (v int PRIMARY KEY)")
    writer.start()
    time.sleep(0.5)

    # 4: the controller starts pod 3, but no agent records an even membership; the leader warns.
    cluster.api.scale_stateful_set(NS, name, 4)
    log = cluster.base / leader / "agent.log"
    wait_for(lambda: "[scale.refused]" in log.read_text(), 15, "the leader's warning about replicas 4", cluster)
    assert "spec.replicas" in log.read_text() and membership(cluster) is None
    assert "--replicas=3" in log.read_text()

    # 5: both new pods become members, clone and stream; the sync rule is ANY 2 of the 4 others.
    started = time.monotonic()
    cluster.api.scale_stateful_set(NS, name, 5)
    others = [p for p in five if p != leader]
    want = "ANY 2 (" + ",".join(f'"{p}"' for p in others) + ")"
    wait_for(lambda: all_streaming(cluster, five) and sync_names(cluster) == want, 60,
             f"five streaming members and {want}", cluster)
    grew = time.monotonic() - started
    assert membership(cluster) == {"members": five, "syncStandbys": 2}
    assert {slot_name_for(p) for p in others} <= slots(writer, leader)

    # 3: the controller deletes pods 4 and 3; the leader records 3 members with k 1 at once.
    started = time.monotonic()
    cluster.api.scale_stateful_set(NS, name, 3)
    gone = {slot_name_for(f"{name}-3"), slot_name_for(f"{name}-4")}
    wait_for(lambda: membership(cluster) == {"members": three, "syncStandbys": 1}, 20,
             "the membership back to 3 with k 1", cluster)
    recorded = time.monotonic() - started
    want = "ANY 1 (" + ",".join(f'"{p}"' for p in three if p != leader) + ")"
    wait_for(lambda: all_streaming(cluster, three) and sync_names(cluster) == want
             and not gone & slots(writer, leader), 40, f"{want} and the removed slots dropped", cluster)
    shrank = time.monotonic() - started
    time.sleep(0.5)
    writer.stop()

    final = cluster.lease_holder()
    assert final is not None
    with writer.connect(final) as conn:
        present = {v for (v,) in conn.execute("SELECT v FROM t").fetchall()}
    gaps = [b - a for a, b in zip(writer.acked_at, writer.acked_at[1:], strict=False)]
    for pod in cluster.ports:  # the scaling steps as the agents logged them (shown with -s)
        lines = (cluster.base / pod / "agent.log").read_text().splitlines()
        print("\n".join(line for line in lines if "[scale." in line))
    print(f"\n3 → 5: all five streaming and ANY 2 of the 4 others after {grew:.1f} s; "
          f"5 → 3: recorded after {recorded:.1f} s, slots dropped and ANY 1 after {shrank:.1f} s; "
          f"{len(writer.acked)} writes acknowledged, {writer.failures} failed attempts, "
          f"longest gap between acknowledged writes {max(gaps, default=0.0):.2f} s")
    assert writer.acked and set(writer.acked) <= present, "an acknowledged write is missing"
    assert final == leader, "scaling replicas changed no primary"
    # Neither the pods going away nor those still cloning held commits up (pgkeel.ha.sync.bridge).
    assert max(gaps, default=0.0) < cluster.cluster.spec.failover.ttl_seconds
    assert cluster.api.verbs() <= set(AGENT_API_CALLS)


def test_scaling_away_the_primarys_ordinal_hands_over_before_the_smaller_membership_is_recorded(
    pod_cluster: Callable[..., PodCluster],
) -> None:
    cluster, leader = three_pods(pod_cluster)
    name = cluster.cluster.name
    three, five = [f"{name}-{i}" for i in range(3)], [f"{name}-{i}" for i in range(5)]
    cluster.api.scale_stateful_set(NS, name, 5)
    wait_for(lambda: all_streaming(cluster, five) and membership(cluster) == {"members": five, "syncStandbys": 2},
             60, "five streaming members", cluster)
    top = f"{name}-4"
    token = (cluster.secrets / layout.API_TOKEN_KEY).read_text().strip()
    answer = httpx.post(f"http://127.0.0.1:{cluster.ports[leader][1]}/switchover", json={"to": top},
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code < 300, answer.text
    wait_for(lambda: cluster.lease_holder() == top and all_streaming(cluster, five), 30, f"{top} leading", cluster)
    writer = Writer(cluster)
    with writer.connect(top) as conn:
        conn.execute("CREATE TABLE t (v int PRIMARY KEY)")
    writer.start()
    time.sleep(0.5)
    before = len(events(cluster))

    started = time.monotonic()
    cluster.api.scale_stateful_set(NS, name, 3)  # deletes pods 4 (the primary) and 3
    wait_for(lambda: membership(cluster) == {"members": three, "syncStandbys": 1} and all_streaming(cluster, three),
             45, "the membership back to 3, recorded by a leader that stays", cluster)
    took = time.monotonic() - started
    time.sleep(0.5)
    writer.stop()

    final = cluster.lease_holder()
    assert final in three
    with writer.connect(final) as conn:
        present = {v for (v,) in conn.execute("SELECT v FROM t").fetchall()}
    log = (cluster.base / top / "agent.log").read_text()
    gaps = [b - a for a, b in zip(writer.acked_at, writer.acked_at[1:], strict=False)]
    print(f"\n5 → 3 with the primary {top} removed: {final} leads and recorded 3 members after {took:.1f} s; "
          f"{len(writer.acked)} writes acknowledged, {writer.failures} failed attempts, "
          f"longest gap between acknowledged writes {max(gaps, default=0.0):.2f} s (the hand-over)")
    assert "[scale.record] spec.replicas=3" not in log, "the leader recorded a membership without itself"
    assert "drain.hand-over" in log, "the removed primary handed over on SIGTERM"
    assert [e["kind"] for e in events(cluster)[before:]] == ["switchover"], "a hand-over, no failover"
    assert writer.acked and set(writer.acked) <= present, "an acknowledged write is missing"
    record = (cluster.base / final / "agent.log").read_text()
    assert "[scale.record] spec.replicas=3" in record
