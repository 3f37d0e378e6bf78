"""The DBA operations of issue 14 on one real local cluster, through the CLI: reinit, logs, scheduled switchover.

One cluster for the whole module (its tests run in order and leave it healthy): a reinit re-clones a
replica from the primary, keeps its old data aside (listed in /status) and is refused for the primary
and while that copy is kept; `switchover --at` changes the leader after its time and not before, and
`--cancel` removes a scheduled one; `logs` prints a member's lines and names the members for a typo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml
from clients import rows_on, wait_for

from pgkeel.local import LocalCluster

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    base = Path(tempfile.mkdtemp(prefix="pgkeel-e2e-dba-", dir="/tmp"))
    os.chmod(base, 0o755)  # the agents run as the postgres user
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"]["name"] = "dba"
    doc["spec"].update(instances=3, resources={"cpu": "1", "memory": "512Mi"}, replication={"mode": "quorum"})
    (base / "cluster.yaml").write_text(yaml.safe_dump(doc))
    local = LocalCluster(base / "cluster")
    try:
        local.up(base / "cluster.yaml", timeout=90)
        yield local
    finally:
        for log in sorted(local.layout.root.glob("nodes/*/agent.log")):
            print(f"\n----- {log.parent.name}/agent.log (last 40 lines)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        try:
            local.down(purge=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def pgkeel(cluster: LocalCluster, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", command, *args, "--dir", str(cluster.layout.root)],
        capture_output=True, text=True, timeout=120,
    )


def roles(cluster: LocalCluster) -> tuple[str, list[str]]:
    status = cluster.wait_healthy(timeout=60)
    return status["leader"], [m["name"] for m in status["members"] if m["name"] != status["leader"]]


def test_reinit_re_clones_a_replica_keeps_its_old_data_aside_and_is_refused_for_the_primary(
    cluster: LocalCluster,
) -> None:
    leader, replicas = roles(cluster)
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE before_reinit (id int PRIMARY KEY)")
        conn.execute("INSERT INTO before_reinit SELECT generate_series(1, 1000)")

    refused = pgkeel(cluster, "reinit", leader, "--yes")
    assert refused.returncode == 1 and "is the leader" in refused.stderr, refused.stdout + refused.stderr
    unknown = pgkeel(cluster, "reinit", "nobody", "--yes")
    assert unknown.returncode == 1 and "members are" in unknown.stderr and leader in unknown.stderr

    target = replicas[0]
    started = time.monotonic()
    done = pgkeel(cluster, "reinit", target, "--yes", "--wait", "--timeout", "60")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "streams again" in done.stdout
    print(f"\nreinit of {target} (CLI, --wait): {took:.1f} s; {done.stdout.strip()}")

    snap = cluster.fetch(target)
    assert snap is not None and snap["role"] == "replica" and snap["state"] == "streaming"
    assert len(snap["asides"]) == 1 and "reinit requested" in snap["asides"][0]["reason"]
    assert Path(snap["asides"][0]["path"]).is_dir()
    assert rows_on(cluster, target, "before_reinit") == set(range(1, 1001))
    metrics = cluster.fetch(target, "/metrics")  # not JSON: fetch gives None; read it directly below
    assert metrics is None
    assert "pgkeel_aside_copies" in __import__("httpx").get(cluster.api_url(target) + "/metrics").text

    again = pgkeel(cluster, "reinit", target, "--yes")  # at most one aside copy: refused, nothing changed
    assert again.returncode == 1 and "aside copy" in again.stderr, again.stdout + again.stderr
    assert len(cluster.fetch(target)["asides"]) == 1  # type: ignore[index]


def test_logs_print_a_members_agent_and_postgres_lines_and_name_the_members_for_a_typo(
    cluster: LocalCluster,
) -> None:
    leader, _ = roles(cluster)
    both = pgkeel(cluster, "logs", leader, "--lines", "5")
    assert both.returncode == 0, both.stderr
    assert "agent log" in both.stdout and "postgres log" in both.stdout
    agent = pgkeel(cluster, "logs", leader, "--agent", "-n", "3")
    assert agent.returncode == 0 and 1 <= len(agent.stdout.strip().splitlines()) <= 3
    typo = pgkeel(cluster, "logs", "nobody")
    assert typo.returncode == 1 and "members are" in typo.stderr


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_scheduled_switchover_happens_after_its_time_not_before_and_cancel_removes_one(
    cluster: LocalCluster,
) -> None:
    leader, _ = roles(cluster)
    past = pgkeel(cluster, "switchover", "--at", iso(time.time() - 60))
    assert past.returncode == 1 and "in the past" in past.stderr

    later = pgkeel(cluster, "switchover", "--at", iso(time.time() + 3600))
    assert later.returncode == 0 and "scheduled" in later.stdout, later.stderr
    shown = pgkeel(cluster, "status")
    assert "switchover pending" in shown.stdout, shown.stdout
    cancelled = pgkeel(cluster, "switchover", "--cancel")
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    assert json.loads(pgkeel(cluster, "status", "--json").stdout)["switchover"] is None

    at = float(int(time.time()) + 6)  # whole seconds: --at is given to the second
    scheduled = pgkeel(cluster, "switchover", "--at", iso(at))
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    while time.time() < at - 0.5:  # not before its time
        assert cluster.status()["leader"] == leader, "the leader changed before the scheduled time"
        time.sleep(0.2)
    new = wait_for(lambda: (lambda s: s["leader"] not in (None, leader) and s["leader"])(cluster.status()),
                   timeout=30, what="the scheduled switchover")
    changed = time.time()
    assert changed >= at
    print(f"\nscheduled switchover {leader} → {new}: done {changed - at:.1f} s after its time")
    cluster.wait_healthy(timeout=60)
    assert json.loads(pgkeel(cluster, "status", "--json").stdout)["switchover"] is None
