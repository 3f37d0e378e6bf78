"""`pgkeel apply` and the rolling restart on a real local 3-node cluster, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml
from clients import Writer, rows_on

from pgkeel.local import LocalCluster

pytestmark = pytest.mark.e2e


def pgkeel(cluster: LocalCluster, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", command, "--dir", str(cluster.layout.root), *args],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )


def with_parameters(cluster: LocalCluster, parameters: dict[str, object], name: str) -> Path:
    doc = yaml.safe_load(cluster.layout.document.read_text())
    doc["spec"]["postgres"]["parameters"] = parameters
    path = cluster.layout.root.parent / name
    path.write_text(yaml.safe_dump(doc))
    return path


def show(cluster: LocalCluster, member: str, parameter: str) -> str:
    with psycopg.connect(cluster.node_dsn(member), autocommit=True) as conn:
        row = conn.execute("SELECT current_setting(%s)", (parameter,)).fetchone()
    assert row is not None
    return str(row[0])


class LeaderWatch:
    """Samples the leader every 50 ms: how often the primary changed while it ran."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.leaders: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LeaderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            leader = self.cluster.status()["leader"]
            if leader is not None and (not self.leaders or self.leaders[-1] != leader):
                self.leaders.append(leader)
            self._stop.wait(0.05)

    @property
    def changes(self) -> int:
        return len(self.leaders) - 1


def test_apply_reloads_a_reload_parameter_everywhere_then_a_restart_parameter_rolls_with_one_switchover(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster()
    names = cluster.cluster().member_names()
    pids = {n: cluster.postgres_pid(n) for n in names}
    stored = cluster.layout.document.read_text()
    conf = (cluster.layout.etc / "postgresql.conf").read_text()

    # what apply cannot do to a running cluster is refused, naming the field, and nothing is written
    renamed = yaml.safe_load(stored)
    renamed["metadata"]["name"] = "another"
    renamed_doc = cluster.layout.root.parent / "renamed.yaml"
    renamed_doc.write_text(yaml.safe_dump(renamed))
    scaled = pgkeel(cluster, "apply", "-f", str(renamed_doc), "--yes")
    assert scaled.returncode == 1
    assert "metadata.name:" in scaled.stderr and "keeps its name" in scaled.stderr, scaled.stderr
    assert cluster.layout.document.read_text() == stored
    assert (cluster.layout.etc / "postgresql.conf").read_text() == conf

    # a reload-only parameter: the diff names it, every member shows it, no postgres restarted
    reload_doc = with_parameters(cluster, {"log_min_duration_statement": "250ms"}, "reload.yaml")
    refused = pgkeel(cluster, "apply", "-f", str(reload_doc))  # no terminal and no --yes: nothing changes
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    assert {show(cluster, n, "log_min_duration_statement") for n in names} == {"-1"}
    done = pgkeel(cluster, "apply", "-f", str(reload_doc), "--yes")
    assert done.returncode == 0, done.stderr
    assert "log_min_duration_statement" in done.stdout and "reload" in done.stdout
    assert {show(cluster, n, "log_min_duration_statement") for n in names} == {"250ms"}
    assert {n: cluster.postgres_pid(n) for n in names} == pids

    # restart-only parameters, max_connections raised (standbys first), under a writer through the rw DSN
    before = show(cluster, names[0], "max_connections")
    raised = int(before) + 15
    restart_doc = with_parameters(
        cluster, {"log_min_duration_statement": "250ms", "max_connections": raised, "shared_buffers": "144MB"},
        "restart.yaml",
    )
    writer = Writer(cluster.dsn(True)).start()
    writer.wait_acks(20)
    first_leader = cluster.status()["leader"]
    with LeaderWatch(cluster) as watch:
        rolled = pgkeel(cluster, "apply", "-f", str(restart_doc), "--restart", "--yes")
    writer.wait_acks(20)
    writer.stop()
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "max_connections" in rolled.stdout and "restart" in rolled.stdout
    assert watch.changes == 1, f"the primary changed {watch.changes} times: {watch.leaders}"
    status = cluster.wait_healthy(timeout=60)
    assert status["leader"] != first_leader
    for name in names:
        assert show(cluster, name, "max_connections") == str(raised)
        assert show(cluster, name, "shared_buffers") == "144MB"
        snap = cluster.fetch(name)
        assert snap is not None and snap["pending_restart"] == []
        assert cluster.postgres_pid(name) != pids[name]  # every postgres was restarted
    acked = writer.acked_ids()
    assert acked <= rows_on(cluster, status["leader"]), "an acknowledged write was lost"
    assert len(acked) > 40

