"""Whole local clusters with real PostgreSQL: replication, failover, rejoin, switchover, quorum safety."""

from __future__ import annotations

import time

import psycopg
import pytest
from clients import Writer, kill_agent, kill_postgres, leader_member, rows_on, wait_for

pytestmark = pytest.mark.e2e


def healthy(cluster):  # type: ignore[no-untyped-def]
    return cluster.wait_healthy(timeout=60)


def test_row_written_on_primary_is_read_on_every_replica(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    status = cluster.status()
    assert sum(m["role"] == "primary" for m in status["members"]) == 1
    with psycopg.connect(status["dsn_rw"], autocommit=True) as conn:
        conn.execute("CREATE TABLE seen (v text)")
        conn.execute("INSERT INTO seen VALUES ('hello from the primary')")
    for member in status["members"]:
        if member["role"] == "replica":
            with psycopg.connect(cluster.node_dsn(member["name"]), autocommit=True) as conn:
                assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
                wait_for(
                    lambda c=conn: c.execute("SELECT count(*) FROM seen WHERE v = 'hello from the primary'").fetchone()
                    == (1,),
                    what=f"row on {member['name']}",
                )


def test_every_member_keeps_a_slot_for_every_other_member(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    names = cluster.cluster().member_names()
    with psycopg.connect(cluster.dsn(True), autocommit=True) as conn:
        conn.execute("CREATE TABLE churn AS SELECT generate_series(1, 20000) AS i")  # some WAL to move slots

    def slots_ready() -> bool:
        for name in names:
            with psycopg.connect(cluster.node_dsn(name), autocommit=True) as conn:
                rows = dict(
                    conn.execute("SELECT slot_name, restart_lsn IS NOT NULL FROM pg_replication_slots").fetchall()
                )
            wanted = {n.replace("-", "_") for n in names if n != name}
            if set(rows) != wanted or not all(rows.values()):
                return False
        return True

    wait_for(slots_ready, what="a physical slot per other member on every member, holding a position")


def test_kill_primary_fails_over_and_old_primary_rejoins_with_pg_rewind(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    writer = Writer(cluster.dsn(True)).start()
    writer.wait_acks(20)
    old = leader_member(cluster)
    kill_agent(old["agent_pid"])
    kill_postgres(old["postgres_pid"])
    killed_at = time.monotonic()
    new_leader = wait_for(
        lambda: (s := cluster.status())["leader"] not in (None, old["name"])
        and any(m["name"] == s["leader"] and m["role"] == "primary" for m in s["members"])
        and s["leader"],
        what="a new primary",
    )
    writer.wait_acks(20)
    outage = writer.first_ack_after(killed_at)
    assert outage is not None
    # bring the old node back: it must rejoin on the new timeline through pg_rewind, not a re-clone
    cluster.up(cluster.layout.document, timeout=90)
    status = healthy(cluster)
    writer.stop()
    assert status["leader"] == new_leader
    back = next(m for m in status["members"] if m["name"] == old["name"])
    leader = next(m for m in status["members"] if m["name"] == new_leader)
    assert back["role"] == "replica" and back["timeline"] == leader["timeline"] > old["timeline"]
    log = (cluster.layout.node(old["name"]) / "agent.log").read_text()
    # the old primary's WAL went past the fork point (its last writes, and the end-of-recovery
    # checkpoint pg_rewind's crash recovery writes), so blocks really had to be rewound
    assert f"pg_rewind against {new_leader}: rewound" in log
    assert not list(cluster.layout.node(old["name"]).glob("data.old-*")), "rejoined by re-cloning, not pg_rewind"
    acked = writer.acked_ids()
    assert acked <= rows_on(cluster, new_leader)
    wait_for(lambda: acked <= rows_on(cluster, old["name"]), what="old primary to replay every acknowledged row")
    print(f"\nkill -9 primary -> first acknowledged write after {outage - killed_at:.2f}s")


def test_postgres_killed_while_agent_lives_restarts_in_place(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    writer = Writer(cluster.dsn(True)).start()
    writer.wait_acks(10)
    old = leader_member(cluster)
    kill_postgres(old["postgres_pid"])
    killed_at = time.monotonic()
    writer.wait_acks(20)
    status = healthy(cluster)
    writer.stop()
    again = next(m for m in status["members"] if m["name"] == old["name"])
    assert status["leader"] == old["name"], "a crashed postgres with a live agent restarts in place"
    assert again["postgres_pid"] != old["postgres_pid"]
    assert writer.acked_ids() <= rows_on(cluster, status["leader"])
    first = writer.first_ack_after(killed_at)
    assert first is not None
    print(f"\npostgres killed -> writes back after {first - killed_at:.2f}s")


def test_switchover_both_ways_loses_nothing(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    writer = Writer(cluster.dsn(True)).start()
    writer.wait_acks(20)
    first = cluster.status()["leader"]
    target = next(m["name"] for m in cluster.status()["members"] if m["name"] != first)
    outages = []
    for to in (target, first):
        started = time.monotonic()
        status = cluster.switchover(to)
        assert status["leader"] == to
        writer.wait_acks(20)
        gaps = [b - a for (_, a), (_, b) in zip(writer.acked, writer.acked[1:], strict=False) if a >= started - 1]
        outages.append(max(gaps))
        healthy(cluster)
    writer.stop()
    final = cluster.status()
    assert final["leader"] == first
    assert writer.acked_ids() <= rows_on(cluster, first)
    for name in cluster.cluster().member_names():
        assert f"{name}" in {m["name"] for m in final["members"] if m["role"] in ("primary", "replica")}
    print(f"\nswitchover write outages: {', '.join(f'{o:.2f}s' for o in outages)}")


def test_quorum_mode_keeps_every_acknowledged_write_across_repeated_primary_kills(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster(mode="quorum")
    writer = Writer(cluster.dsn(True)).start()
    for _ in range(3):
        writer.wait_acks(30)
        old = leader_member(cluster)
        kill_agent(old["agent_pid"])
        kill_postgres(old["postgres_pid"])
        wait_for(
            lambda o=old: (s := cluster.status())["leader"] not in (None, o["name"])
            and any(m["role"] == "primary" for m in s["members"]),
            what="a new primary",
        )
        writer.wait_acks(30)
        cluster.up(cluster.layout.document, timeout=90)
        healthy(cluster)
    writer.stop()
    final = cluster.status()["leader"]
    acked = writer.acked_ids()
    present = rows_on(cluster, final)
    assert acked <= present, f"lost acknowledged writes: {sorted(acked - present)[:20]}"
    assert present <= writer.attempted, "rows that were never attempted"
    assert len(acked) > 100


def test_quorum_waits_without_proof_and_forced_failover_overrides(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster(mode="quorum")
    status = cluster.status()
    primary = leader_member(cluster)
    replicas = [m for m in status["members"] if m["role"] == "replica"]
    lost, survivor = replicas
    kill_agent(lost["agent_pid"])
    kill_postgres(lost["postgres_pid"])
    kill_agent(primary["agent_pid"])
    kill_postgres(primary["postgres_pid"])
    ttl = cluster.cluster().spec.failover.ttl_seconds
    time.sleep(ttl * 3)
    # the survivor cannot prove it holds every acknowledged commit (the lost replica might): it waits
    after = cluster.status()
    assert [m["name"] for m in after["members"] if m["role"] == "primary"] == []
    snapshot = cluster.fetch(survivor["name"])
    assert snapshot is not None
    assert any("quorum" in a["reason"] for a in snapshot["actions"]), snapshot["actions"]
    cluster.failover(survivor["name"], force=True)
    wait_for(
        lambda: any(m["name"] == survivor["name"] and m["role"] == "primary" for m in cluster.status()["members"]),
        what="forced failover",
    )
    with psycopg.connect(cluster.node_dsn(survivor["name"]), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)


def test_config_change_is_reloaded_and_restart_only_parameters_are_reported(make_cluster) -> None:  # type: ignore[no-untyped-def]
    import yaml

    cluster = make_cluster()
    doc = yaml.safe_load(cluster.layout.document.read_text())
    doc["spec"]["postgres"]["parameters"] = {"work_mem": "7MB", "shared_buffers": "96MB"}
    changed = cluster.layout.root.parent / "changed.yaml"
    changed.write_text(yaml.safe_dump(doc))
    cluster.up(changed, timeout=60, apply=True)  # every agent runs: this only rewrites the shared config files
    names = cluster.cluster().member_names()

    def reloaded() -> bool:
        for name in names:
            with psycopg.connect(cluster.node_dsn(name), autocommit=True) as conn:
                if conn.execute("SHOW work_mem").fetchone() != ("7MB",):
                    return False
        return True

    wait_for(reloaded, what="work_mem reloaded on every node")
    wait_for(
        lambda: all("shared_buffers" in ((cluster.fetch(n) or {}).get("pending_restart") or []) for n in names),
        what="shared_buffers reported as needing a restart",
    )
    assert cluster.status()["leader"] is not None
