"""Scheduled base backups on a local 3-node cluster: run by the leader's agent alone, once per occurrence,
and carried on by the next leader after the leader's node crashes; `pgkeel backup now` goes the same way.

The schedule is every minute (the finest cron has), so the test waits for two occurrences: one taken
by the first leader, one by the leader elected after a crash of the first leader's node.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from clients import kill_agent, kill_postgres

from pgkeel.local import LocalCluster
from pgkeel.local.layout import chown_for_postgres

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="no pgbackrest"),
    # ~100 s of waiting for minute boundaries: on demand, outside make test's budget (the decision itself is the
    # property test tests/unit/backup/test_backup_plan.py; the agent's runner is in test_backup_local.py)
    pytest.mark.skipif(not os.environ.get("PGKEEL_SLOW_E2E"), reason="on demand: PGKEEL_SLOW_E2E=1 (~100 s)"),
]


def pgkeel(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgkeel", *args, "--dir", str(cluster.layout.root)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgkeel-e2e-sched-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    try:
        if (path / "cluster" / "cluster.yaml").exists():
            LocalCluster(path / "cluster").down(purge=True)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, cluster: LocalCluster) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    for log in sorted(cluster.layout.root.glob("nodes/*/agent.log")):
        print(f"----- {log.parent.name}/agent.log\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def scheduled_results(cluster: LocalCluster) -> list[dict[str, Any]]:
    try:
        record = cluster.get_any("/backups")
    except RuntimeError:
        return []
    return [r for r in record["results"] if r["request"] is None and r["ok"]]


@pytest.mark.timeout(600)
def test_the_leader_runs_each_occurrence_once_and_the_next_leader_carries_on_after_a_crash(
    base: Path, document_writer: Callable[..., Path]
) -> None:
    repo = base / "repo"
    repo.mkdir()
    chown_for_postgres(repo)
    doc = document_writer(base)
    spec = yaml.safe_load(doc.read_text())
    spec["spec"]["backup"] = {"repositories": [{"volume": {"path": str(repo)}}],
                              "schedule": {"full": "* * * * *", "diff": None}}
    doc.write_text(yaml.safe_dump(spec))
    cluster = LocalCluster(base / "cluster")
    cluster.up(doc, timeout=90)
    first = cluster.status()["leader"]

    done = pgkeel(cluster, "backup", "now", "--json")  # queued in the store, run by the leader's agent
    assert done.returncode == 0, done.stdout + done.stderr
    now_run = json.loads(done.stdout)
    assert now_run["primary"] == first and now_run["source"] != first  # copied from a standby
    assert now_run["backup"]["type"] == "full" and now_run["stanza_created"] in (True, False)

    began = time.monotonic()
    results = wait_for(lambda: scheduled_results(cluster), 150, "a scheduled backup", cluster)
    print(f"\nfirst scheduled backup recorded {time.monotonic() - began:.1f} s after `backup now`")
    one = results[0]
    assert one["member"] == first and one["kind"] == "full"
    metrics = httpx.get(cluster.api_url(first) + "/metrics", timeout=5).text
    assert 'pgkeel_backup_last_success_timestamp_seconds{cluster="e2e",member="' + first + '"}' in metrics
    shown = pgkeel(cluster, "status")
    assert f"backups ({first}): " in shown.stdout and "last ok full" in shown.stdout, shown.stdout

    status = cluster.status()
    old = next(m for m in status["members"] if m["name"] == first)
    kill_agent(old["agent_pid"])  # the first leader's node crashes
    kill_postgres(old["postgres_pid"])
    crashed = time.monotonic()
    new_leader = wait_for(lambda: (now := cluster.status().get("leader")) not in (None, first) and now, 60,
                          "a new leader", cluster)
    later = wait_for(lambda: [r for r in scheduled_results(cluster) if r["member"] == new_leader], 150,
                     f"a scheduled backup by {new_leader}", cluster)
    print(f"new leader {new_leader}; its first scheduled backup recorded {time.monotonic() - crashed:.1f} s "
          "after the crash")
    assert max(later[0]["covers"]["full"], 0) > one["covers"]["full"]

    listed = json.loads(pgkeel(cluster, "backup", "list", "--json").stdout)["backups"]
    api = cluster.api_url(new_leader)
    remote = subprocess.run([sys.executable, "-m", "pgkeel", "backup", "list", "--json", "--api", api],
                            capture_output=True, text=True, timeout=60)  # as from another machine
    assert remote.returncode == 0, remote.stdout + remote.stderr
    remote_labels = [b["label"] for b in json.loads(remote.stdout)["backups"]]
    record = cluster.get_any("/backups")  # read after the repository: it knows every backup listed
    ok = [r for r in record["results"] if r["ok"]]
    labels = [r["label"] for r in ok]
    for label in [b["label"] for b in listed] + remote_labels:
        assert labels.count(label) == 1, (label, ok)  # no backup nobody asked for, none twice
    assert remote_labels  # read through the member's API (GET /backups/repository)
    occurrences = [r["covers"]["full"] for r in ok if r["request"] is None]
    assert len(occurrences) == len(set(occurrences)), ok  # never two for one occurrence
    seen = sorted(o for o in occurrences if o >= one["covers"]["full"])
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    # Every minute has its backup, except that while no leader runs one (a run of the crashed leader is
    # retaken once it stops beating) a minute may pass: the next leader takes the latest occurrence then.
    assert all(g in (60.0, 120.0) for g in gaps) and gaps.count(120.0) <= 1, seen
    for r in ok:
        assert r["member"] in (first, new_leader)

