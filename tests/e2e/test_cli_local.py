"""The switchover, failover and psql commands against a running local cluster, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from pgkeel.local import LocalCluster

pytestmark = pytest.mark.e2e


def pgkeel(cluster: LocalCluster, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgkeel", command, "--dir", str(cluster.layout.root), *args],
        capture_output=True, text=True, timeout=120,
    )


def test_switchover_waits_for_the_target_psql_passes_arguments_and_a_stopped_target_is_refused(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster()
    first = cluster.status()["leader"]
    target, third = (name for name in cluster.cluster().member_names() if name != first)

    done = pgkeel(cluster, "switchover", "--to", target)
    assert done.returncode == 0, done.stderr
    assert f"leader is now {target}" in done.stdout  # printed once the target leads, with the table
    assert cluster.status()["leader"] == target

    # psql arguments after `--` reach psql: the named member answers the query
    query = pgkeel(cluster, "psql", target, "--", "-Atc", "select pg_is_in_recovery()")
    assert (query.returncode, query.stdout) == (0, "f\n"), query.stderr
    primary = pgkeel(cluster, "psql", "--", "-Atc", "select pg_is_in_recovery()")  # no name: the primary
    assert (primary.returncode, primary.stdout) == (0, "f\n"), primary.stderr

    # stop the third member's agent (it stops its postgres): a failover to it is refused at once
    pid = cluster.agent_pid(third)
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while cluster.agent_pid(third) is not None:
        assert time.monotonic() < deadline, f"the agent of {third} did not stop"
        time.sleep(0.1)
    refused = pgkeel(cluster, "failover", "--to", third, "--yes")
    assert refused.returncode == 1
    assert "requested" not in refused.stdout
    assert f"refused: {third}" in refused.stderr and "only a streaming replica can take over" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert cluster.status()["leader"] == target  # nothing happened
