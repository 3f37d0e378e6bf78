"""Maintenance mode and the history of primaries on a real local cluster, through the CLI a DBA uses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from clients import kill_agent, kill_postgres, leader_member, wait_for

from pgkeel.local import LocalCluster

pytestmark = pytest.mark.e2e

DEAD_FOR = 25.0  # well past the lease (3 s), the member records (10 s) and an election's own waits


def pgkeel(cluster: LocalCluster, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", command, "--dir", str(cluster.layout.root), *args],
        capture_output=True, text=True, timeout=120,
    )


def status(cluster: LocalCluster) -> dict:  # type: ignore[type-arg]
    done = pgkeel(cluster, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def history(cluster: LocalCluster) -> list[dict]:  # type: ignore[type-arg]
    done = pgkeel(cluster, "history", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_paused_cluster_does_not_fail_over_until_resumed_and_history_records_each_change(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster()
    cluster.wait_healthy(timeout=60)
    assert history(cluster) == [], "a fresh cluster has had no change of primary"
    assert "no change of primary" in pgkeel(cluster, "history").stdout

    paused = pgkeel(cluster, "pause", "--reason", "ticket-1")
    assert paused.returncode == 0, paused.stderr
    wait_for(lambda: status(cluster)["paused"] is True, what="every agent to see the pause")
    assert "paused: yes" in pgkeel(cluster, "status").stdout

    # a switchover is an operator's act: it still works while paused, and is recorded as one
    first = cluster.status()["leader"]
    moved = pgkeel(cluster, "switchover")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    second = cluster.status()["leader"]
    assert second not in (None, first)
    events = wait_for(lambda: history(cluster) or None, what="the switchover in the history")
    assert [(e["kind"], e["previous"], e["leader"]) for e in events] == [("switchover", first, second)]
    assert events[0]["timeline"] == 2 and events[0]["lsn"] > 0 and abs(events[0]["time"] - time.time()) < 120

    # the primary's node dies: while paused nobody takes over, however long it stays dead
    old = leader_member(cluster)
    assert old["name"] == second
    kill_agent(old["agent_pid"])
    kill_postgres(old["postgres_pid"])
    deadline = time.monotonic() + DEAD_FOR
    while time.monotonic() < deadline:
        st = cluster.status()
        assert not any(m["role"] == "primary" for m in st["members"]), st
        assert st["leader"] in (None, old["name"]), st
        time.sleep(0.5)
    assert status(cluster)["paused"] is True

    resumed = pgkeel(cluster, "resume")
    assert resumed.returncode == 0 and "resumed" in resumed.stdout, resumed.stderr
    third = wait_for(
        lambda: (s := cluster.status())["leader"] not in (None, old["name"])
        and any(m["name"] == s["leader"] and m["role"] == "primary" for m in s["members"])
        and s["leader"],
        what="a failover once resumed",
    )
    events = wait_for(lambda: h if len(h := history(cluster)) == 2 else None, what="the failover in the history")
    assert (events[1]["kind"], events[1]["previous"], events[1]["leader"]) == ("failover", second, third)
    assert events[1]["timeline"] == 3
    table = pgkeel(cluster, "history").stdout
    assert "switchover" in table and "failover" in table and third in table
    assert pgkeel(cluster, "resume").stdout.strip().startswith("not paused")


def test_pause_with_an_expiry_ends_by_itself_and_bad_lengths_change_nothing(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(mode="async")
    cluster.wait_healthy(timeout=60)
    for bad in (["--for", "soon"], ["--for", "0s"], ["--until", "2001-01-01T00:00"], ["--for", "1m", "--until", "x"]):
        refused = pgkeel(cluster, "pause", *bad)
        assert refused.returncode != 0 and refused.stdout + refused.stderr, bad
    assert status(cluster)["paused"] is False, "a refused pause changed nothing"
    started = time.time()
    done = pgkeel(cluster, "pause", "--for", "4s")
    assert done.returncode == 0, done.stderr
    st = wait_for(lambda: s if (s := status(cluster))["paused"] else None, what="the pause to be seen")
    assert started + 3 < st["paused_until"] < time.time() + 4.5
    wait_for(lambda: status(cluster)["paused"] is False, timeout=30, what="the pause to expire by itself")
