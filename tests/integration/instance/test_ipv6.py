"""IPv6 single-stack (issue 16 item 9): a replica clones and streams from a primary that listens on an
IPv6 address only, and the standby's configured leader reads back equal to the leader's Address (so the
follow rules do not re-point it every loop). The API side: tests/integration/api/test_api_ipv6.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from instance_nodes import Nodes, make_nodes, needs_pg15

from pgkeel.ha.records import Address

pytestmark = [pytest.mark.integration, needs_pg15]

V6 = "::1"


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def test_a_replica_streams_over_ipv6_and_reads_back_the_leader_address_it_was_given(nodes: Nodes) -> None:
    a = nodes.primary("a", host=V6)
    a.query("CREATE TABLE t (i int)")
    a.query("INSERT INTO t SELECT generate_series(1, 100)")
    b = nodes.replica(a, "b", host=V6)

    streaming = nodes.wait_for(lambda: b.query("SELECT status, sender_host FROM pg_stat_wal_receiver"))
    assert streaming == [("streaming", V6)]
    assert b.configured_leader() == str(Address(V6, a.config.port)) == f"[{V6}]:{a.config.port}"
    nodes.wait_for(lambda: b.query("SELECT count(*) FROM t") == [(100,)])
