"""Scaling a running local cluster 3 → 5 → 3 with `pgkeel apply`, as a DBA does it, with a writer running.

Growing: the new members clone and stream, get slots on the leader, and the synchronous set becomes
ANY 2 of the four others (n = 2 for 5 members). Shrinking while the leader is one of the members that
leave: it switches over first, the synchronous set goes back to ANY 1 of the two others, the removed
members' agents and postgres stop, their slots are dropped everywhere, their data stays in place.
Every acknowledged write is on every remaining member at the end. Bad input changes nothing: scaling
together with a parameter change, and `up` with another instance count, are refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from clients import Writer, rows_on, wait_for

from pgkeel.local import LocalCluster

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    base = Path(tempfile.mkdtemp(prefix="pgkeel-e2e-scale-", dir="/tmp"))
    os.chmod(base, 0o755)  # the agents run as the postgres user
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"]["name"] = "scale"
    doc["spec"].update(instances=3, resources={"cpu": "1", "memory": "256Mi"}, replication={"mode": "quorum"})
    (base / "cluster.yaml").write_text(yaml.safe_dump(doc))
    local = LocalCluster(base / "cluster")
    try:
        local.up(base / "cluster.yaml", timeout=90)
        yield local
    finally:
        for log in sorted(local.layout.root.glob("nodes/*/agent.log")):
            print(f"\n----- {log.parent.name}/agent.log (last 30 lines)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        try:
            local.down(purge=True)
            for name in ("scale-3", "scale-4"):  # removed members: `down` stops only the document's
                pid = local.agent_pid(name) or local.postgres_pid(name)
                assert pid is None, f"{name} still runs (pid {pid})"
        finally:
            shutil.rmtree(base, ignore_errors=True)


def pgkeel(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgkeel", *args, "--dir", str(cluster.layout.root)],
                          capture_output=True, text=True, timeout=400)


def document(cluster: LocalCluster, instances: int, name: str, **parameters: str) -> Path:
    doc = yaml.safe_load(cluster.layout.document.read_text())
    doc["spec"]["instances"] = instances
    if parameters:
        doc["spec"].setdefault("postgres", {}).setdefault("parameters", {}).update(parameters)
    path = cluster.layout.root.parent / name
    path.write_text(yaml.safe_dump(doc))
    return path


def slots(cluster: LocalCluster, name: str) -> set[str]:
    with psycopg.connect(cluster.node_dsn(name), autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots")}


def sync_names(cluster: LocalCluster, name: str) -> str:
    with psycopg.connect(cluster.node_dsn(name), autocommit=True) as conn:
        return str(conn.execute("SHOW synchronous_standby_names").fetchone()[0])  # type: ignore[index]


def test_scaling_with_other_changes_or_through_up_is_refused_and_changes_nothing(cluster: LocalCluster) -> None:
    stored = cluster.layout.document.read_text()
    mixed = pgkeel(cluster, "apply", "-f", str(document(cluster, 5, "mixed.yaml", work_mem="8MB")), "--yes")
    assert mixed.returncode == 1 and "scale alone" in mixed.stderr and "work_mem" in mixed.stderr, mixed.stderr
    via_up = pgkeel(cluster, "up", "-f", str(document(cluster, 5, "five.yaml")))
    assert via_up.returncode == 1 and "pgkeel apply" in via_up.stderr, via_up.stdout + via_up.stderr
    assert cluster.layout.document.read_text() == stored
    assert not cluster.layout.node("scale-3").exists()


def test_three_to_five_to_three_keeps_every_acknowledged_write(cluster: LocalCluster) -> None:
    status = cluster.wait_healthy(timeout=60)
    leader = status["leader"]
    assert sync_names(cluster, leader).startswith("ANY 1 (")

    began = time.monotonic()
    grown = pgkeel(cluster, "apply", "-f", str(document(cluster, 5, "five.yaml")), "--yes")
    assert grown.returncode == 0, grown.stdout + grown.stderr
    print(f"\nscale 3 → 5 (apply, two clones, all streaming): {time.monotonic() - began:.1f} s")
    five = cluster.wait_healthy(timeout=60)
    names = [m["name"] for m in five["members"]]
    assert names == [f"scale-{i}" for i in range(5)]
    leader = five["leader"]
    wait_for(lambda: sync_names(cluster, leader).startswith("ANY 2 ("), timeout=30, what="ANY 2 of the four others")
    assert all(f'"{n}"' in sync_names(cluster, leader) for n in names if n != leader)
    wait_for(lambda: {"scale_3", "scale_4"} <= slots(cluster, leader), timeout=30, what="slots for the new members")

    writer = Writer(cluster.dsn()).start()  # the five-member DSN: it follows the leader wherever it goes
    writer.wait_acks(20)
    # The leader leaves in the shrink: move it to scale-4 first, so apply must hand over before removing it.
    moved = pgkeel(cluster, "switchover", "--to", "scale-4")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    cluster.wait_healthy(timeout=60)
    writer.wait_acks(20)

    began = time.monotonic()
    shrunk = pgkeel(cluster, "apply", "-f", str(document(cluster, 3, "three.yaml")), "--yes")
    took = time.monotonic() - began
    assert shrunk.returncode == 0, shrunk.stdout + shrunk.stderr
    assert "handed over" in shrunk.stdout and "data kept" in shrunk.stdout, shrunk.stdout
    writer.wait_acks(20)
    writer.stop()
    gaps = [b - a for (_, a), (_, b) in zip(writer.acked, writer.acked[1:], strict=False)]
    print(f"scale 5 → 3 with the leader leaving: {took:.1f} s; {len(writer.acked)} acknowledged writes, "
          f"longest gap {max(gaps):.2f} s")

    three = cluster.wait_healthy(timeout=60)
    assert [m["name"] for m in three["members"]] == ["scale-0", "scale-1", "scale-2"]
    leader = three["leader"]
    assert leader in ("scale-0", "scale-1", "scale-2")
    names_now = sync_names(cluster, leader)
    assert names_now.startswith("ANY 1 (") and "scale-3" not in names_now and "scale-4" not in names_now
    for name in ("scale-3", "scale-4"):
        assert cluster.agent_pid(name) is None and cluster.postgres_pid(name) is None
        assert (cluster.layout.node(name) / "data" / "PG_VERSION").exists()  # kept: no --purge
    for name in ("scale-0", "scale-1", "scale-2"):
        wait_for(lambda n=name: not ({"scale_3", "scale_4"} & slots(cluster, n)), timeout=30,
                 what=f"the removed members' slots dropped on {name}")
        assert writer.acked_ids() <= wait_for(lambda n=name: (lambda r: r if writer.acked_ids() <= r else None)(
            rows_on(cluster, n)), timeout=30, what=f"every acknowledged write on {name}")

    # The cluster still takes writes that need a standby's acknowledgement (quorum mode, ANY 1 of two).
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO acked (id) VALUES (-1)")
