"""The election probe's timeline, read as the replication role, is the one a node's WAL is on now.

Peers rank candidates by timeline first, so a node read one timeline behind ranks below one it is
level with (and a replica behind the last leader's timeline is never promoted).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from instance_nodes import REPL_PASSWORD, REPL_USER, Nodes, make_nodes, needs_pg15
from test_instance_rewind import checkpoint_in_common, replayed_all_of

from pgkeel.ha.peers import POSITION_SQL
from pgkeel.instance import Instance, RewindOutcome

pytestmark = [pytest.mark.integration, needs_pg15]


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def probed_timeline(inst: Instance) -> int:
    """What a peer's election probe reads: POSITION_SQL as the replication role over TCP."""
    conninfo = (
        f"host={inst.config.host} port={inst.config.port} dbname=postgres user={REPL_USER} "
        f"password={REPL_PASSWORD} connect_timeout=3"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(POSITION_SQL).fetchone()
    assert row is not None
    return int(row[4])


def checkpoint_timeline(inst: Instance) -> int:
    return int(inst.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0])


def test_a_primary_promoted_since_its_last_checkpoint_reads_its_new_timeline(nodes: Nodes) -> None:
    a = nodes.primary("a")
    a.query("CREATE TABLE t (i int, pad text)")
    # A slow spread checkpoint after promotion: many pages dirtied by replay, pacing over a long timeout.
    b = nodes.replica(a, "b", checkpoint_timeout="1h", checkpoint_completion_target="0.9", shared_buffers="64MB")
    a.query("INSERT INTO t SELECT i, repeat('x', 200) FROM generate_series(1, 150000) i")
    checkpoint_in_common(a, b)
    b.promote()
    assert checkpoint_timeline(b) == 1, "the premise: b has not checkpointed on timeline 2 yet"
    assert probed_timeline(b) == 2


def test_a_rewound_standby_reads_the_timeline_it_was_rewound_onto(nodes: Nodes) -> None:
    a = nodes.primary("a")
    b = nodes.replica(a, "b")
    a.query("CREATE TABLE t (i int)")
    a.query("SELECT pg_switch_wal()")
    checkpoint_in_common(a, b)
    b.promote()
    b.checkpoint()
    a.query("INSERT INTO t VALUES (1)")  # a's own history on timeline 1
    a.stop("fast")
    assert a.try_rewind(b.config.host, b.config.port).outcome is RewindOutcome.REWOUND
    a.configure(standby=True, leader=(b.config.host, b.config.port), sync_standby_names="")
    a.start()
    replayed_all_of(a, b)
    b.stop("fast")  # a is now a detached standby, as in an election after b is lost
    assert checkpoint_timeline(a) == 1, "the premise: a's last checkpoint still names timeline 1"
    assert probed_timeline(a) == 2
