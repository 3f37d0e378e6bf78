"""Stopping a primary cut off from its standby: a fast stop waits for the standby, the escalation does not.

A fast shutdown of a primary ends only once each WAL sender has the shutdown checkpoint confirmed;
a standby that cannot answer (partitioned, frozen) holds it for wal_sender_timeout (60 s), which is
what a demoted primary's rejoin waited for in the lab. `stop(timeout=…)` turns it into an immediate stop.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from instance_nodes import Nodes, make_nodes, needs_pg15

from pgkeel.ha.plan_follow import DEMOTE_ESCALATE_AFTER

pytestmark = [pytest.mark.integration, needs_pg15]


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def test_a_fast_stop_blocked_by_a_frozen_standby_escalates_to_immediate(nodes: Nodes) -> None:
    a = nodes.primary("a")
    b = nodes.replica(a, "b")
    a.query("CREATE TABLE t (i int)")
    (receiver,) = Nodes.wait_for(lambda: b.query("SELECT pid FROM pg_stat_wal_receiver"))[0]  # type: ignore[index]
    os.kill(receiver, signal.SIGSTOP)  # b can no longer confirm anything a sends
    try:
        a.query("INSERT INTO t VALUES (1)")
        a.stop("fast", timeout=DEMOTE_ESCALATE_AFTER)
        assert a.postmaster_pid() is None
        log = a.config.log_file.read_text()
        assert "received fast shutdown request" in log
        assert "received immediate shutdown request" in log, "the fast stop finished on its own: no escalation tested"
    finally:
        os.kill(receiver, signal.SIGCONT)
