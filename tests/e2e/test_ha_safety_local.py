"""The HA safety claims, each against a whole local cluster with faults that outlast their timers.

- A primary whose agent dies (postgres still running) stops acknowledging writes by its fence deadline
  (pgkeel_fence inside postgres) and is replaced: never two writable nodes, for as long as the agent
  stays dead (30 s here: three times the member-record TTL that used to make the old primary invisible).
- 2n+1 survives n failures: five nodes lose the primary and its most advanced replica at once, a primary
  is elected, and no acknowledged write is lost.
"""

from __future__ import annotations

import time

import pytest
from clients import WritableSampler, Writer, kill_agent, kill_postgres, leader_member, rows_on, wait_for

pytestmark = pytest.mark.e2e

AGENT_DEAD_SECONDS = 30.0


@pytest.mark.parametrize("mode", ["async", "quorum"])
def test_primary_whose_agent_stays_dead_is_fenced_and_replaced_never_two_writable(make_cluster, mode: str) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster(mode=mode)
    writer = Writer(cluster.dsn(True)).start()
    writer.wait_acks(20)
    sampler = WritableSampler(cluster).start()
    old = leader_member(cluster)
    kill_agent(old["agent_pid"])
    killed = time.monotonic()
    time.sleep(AGENT_DEAD_SECONDS)
    assert not sampler.split_brain_samples(), f"two writable nodes at once: {sampler.split_brain_samples()[:5]}"
    late = sampler.writable_after(killed + 5.0)
    assert old["name"] not in late, "the old primary still acknowledged writes long after its agent died"
    assert late, "no node took writes while the old primary's agent was dead"
    new = cluster.status()["leader"]
    assert new not in (None, old["name"])
    cluster.up(cluster.layout.document, timeout=90)  # the agent comes back: the old primary rejoins
    status = cluster.wait_healthy(timeout=90)
    sampler.stop()
    writer.stop()
    assert not sampler.split_brain_samples()
    rejoined = next(m for m in status["members"] if m["name"] == old["name"])
    assert rejoined["role"] == "replica"
    if mode == "quorum":
        assert writer.acked_ids() <= rows_on(cluster, status["leader"])
    gaps = [b - a for (_, a), (_, b) in zip(writer.acked, writer.acked[1:], strict=False) if b > killed]
    outage = [max(gaps)] if gaps else []
    print(
        f"\nagent dead {AGENT_DEAD_SECONDS:g}s ({mode}): {len(sampler.samples)} samples, 0 with two writable; "
        f"write outage {outage[0] if outage else float('nan'):.2f}s"
    )


def test_five_nodes_survive_losing_the_primary_and_its_best_replica(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster(mode="quorum", instances=5)
    writer = Writer(cluster.dsn(True)).start()
    writer.wait_acks(50)
    status = cluster.status()
    primary = leader_member(cluster)
    replicas = sorted((m for m in status["members"] if m["role"] == "replica"), key=lambda m: -(m["lsn"] or 0))
    best = replicas[0]
    for victim in (primary, best):
        kill_agent(victim["agent_pid"])
        kill_postgres(victim["postgres_pid"])
    killed = time.monotonic()
    wait_for(
        lambda: (
            (s := cluster.status())["leader"] not in (None, primary["name"], best["name"])
            and any(m["role"] == "primary" for m in s["members"])
        ),
        timeout=60,
        what="a primary elected among the three survivors",
    )
    writer.wait_acks(30, timeout=60)
    writer.stop()
    leader = cluster.status()["leader"]
    acked, present = writer.acked_ids(), rows_on(cluster, leader)
    assert acked <= present, f"lost acknowledged writes: {sorted(acked - present)[:20]}"
    first = writer.first_ack_after(killed)
    print(
        f"\n5 nodes, primary + best replica lost: writes back after {first - killed if first else float('nan'):.2f}s, "
        f"{len(acked)} acknowledged, 0 lost"
    )
