"""pg_rewind against real servers: each outcome the agent acts on, produced for real."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from instance_nodes import Nodes, make_nodes, needs_pg15

from pgkeel.instance import Instance, RewindError, RewindIncomplete, RewindOutcome
from pgkeel.instance.rewind import rewind_marker

pytestmark = [pytest.mark.integration, needs_pg15]
CAPTURE = os.environ.get("PGKEEL_CAPTURE_REWIND")  # a directory: save each output (unit-test fixtures)


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def capture(name: str, output: str) -> None:
    if CAPTURE:
        Path(CAPTURE, name + ".txt").write_text(output)


def addr(inst: Instance) -> tuple[str, int]:
    return inst.config.host, inst.config.port


def replayed_all_of(replica: Instance, primary: Instance) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    (lsn,) = primary.query("SELECT pg_current_wal_lsn()::text")[0]
    Nodes.wait_for(lambda: replica.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0])


def checkpoint_in_common(primary: Instance, replica: Instance) -> None:
    """A checkpoint the replica has replayed before it is promoted: the last common checkpoint, in WAL the
    old primary still holds. Without the wait the fork can fall before it (async replication), and
    pg_rewind must read back to an older checkpoint whose segment the old primary may have recycled."""
    primary.query("CHECKPOINT")
    replayed_all_of(replica, primary)


def diverge(nodes: Nodes) -> tuple[Instance, Instance]:
    """a was the primary, b (its replica) was promoted, a kept writing: a must be rewound onto b."""
    a = nodes.primary("a")
    a.query("CREATE TABLE t (i int)")
    b = nodes.replica(a, "b")
    a.query("INSERT INTO t SELECT generate_series(1, 1000)")
    a.query("SELECT pg_switch_wal()")
    checkpoint_in_common(a, b)
    b.promote()
    b.checkpoint()  # pg_rewind reads the source's timeline from its control file
    a.query("INSERT INTO t SELECT generate_series(1, 1000)")  # a's own, divergent history
    return a, b


def test_rewound_then_starts_as_replica(nodes: Nodes) -> None:
    a, b = diverge(nodes)
    a.stop("fast")
    result = a.try_rewind(*addr(b))
    capture("rewound", result.output)
    assert result.outcome is RewindOutcome.REWOUND, result.output
    assert result.ok and result.source_mb is not None
    assert not a.rewind_incomplete()
    a.configure(standby=True, leader=addr(b), sync_standby_names="")
    a.start()
    assert a.status().in_recovery


def test_legacy_path_13_14_after_a_crash(nodes: Nodes) -> None:
    """Without --config-file: our single-user crash recovery, then --no-ensure-shutdown."""
    a, b = diverge(nodes)
    a.stop("immediate")
    assert not a.control_data().clean_shutdown
    result = a.try_rewind(*addr(b), major=14)
    capture("rewound_legacy", result.output)
    assert result.outcome is RewindOutcome.REWOUND, result.output
    assert "--config-file" not in result.output
    a.configure(standby=True, leader=addr(b), sync_standby_names="")
    a.start()
    assert a.status().in_recovery


def test_not_needed_for_a_replica_on_the_same_timeline(nodes: Nodes) -> None:
    a = nodes.primary("a")
    b = nodes.replica(a, "b")
    b.stop("fast")
    result = b.try_rewind(*addr(a))
    capture("not_needed", result.output)
    assert result.outcome is RewindOutcome.NOT_NEEDED, result.output
    assert b.rewind(*addr(a)) is False  # the bool API still works


def test_unreachable_when_the_source_is_down(nodes: Nodes) -> None:
    a, b = diverge(nodes)
    a.stop("fast")
    b.stop("fast")
    result = a.try_rewind(*addr(b))
    capture("unreachable_refused", result.output)
    assert result.outcome is RewindOutcome.UNREACHABLE, result.output
    assert result.outcome.retryable and not result.outcome.needs_reclone
    assert not a.rewind_incomplete()
    with pytest.raises(RewindError) as err:
        a.rewind(*addr(b))
    assert err.value.result.outcome is RewindOutcome.UNREACHABLE
    b.start()  # the leader is back: the retry succeeds
    assert a.try_rewind(*addr(b)).outcome is RewindOutcome.REWOUND


def test_unreachable_on_bad_password(nodes: Nodes) -> None:
    a, b = diverge(nodes)
    a.stop("fast")
    b.query("ALTER ROLE repl PASSWORD 'changed'")
    result = a.try_rewind(*addr(b))
    capture("unreachable_auth", result.output)
    assert result.outcome is RewindOutcome.UNREACHABLE, result.output


def test_diverged_beyond_rewind_when_target_wal_is_gone(nodes: Nodes) -> None:
    """The target's WAL since the fork point was recycled: only a re-clone can help."""
    a = nodes.primary("a", min_wal_size="32MB", max_wal_size="32MB")
    a.query("CREATE TABLE t (i int)")
    b = nodes.replica(a, "b")
    a.query("SELECT pg_switch_wal()")
    a.query("CHECKPOINT")
    b.promote()
    b.checkpoint()
    a.drop_slot(b.config.slot_name)  # nothing keeps a's WAL now (wal_keep_size = 0)
    for _ in range(6):
        a.query("INSERT INTO t VALUES (1)")
        a.query("SELECT pg_switch_wal()")
        a.query("CHECKPOINT")
    a.stop("fast")
    result = a.try_rewind(*addr(b))
    capture("diverged_wal_gone", result.output)
    assert result.outcome is RewindOutcome.DIVERGED_BEYOND_REWIND, result.output
    assert result.outcome.needs_reclone


def test_failed_against_a_foreign_cluster(nodes: Nodes) -> None:
    a = nodes.primary("a")
    x = nodes.primary("x")
    a.stop("fast")
    result = a.try_rewind(*addr(x))
    capture("failed_foreign", result.output)
    assert result.outcome is RewindOutcome.FAILED, result.output
    assert "different systems" in result.reason
    assert not result.outcome.needs_reclone


def test_interrupted_rewind_is_never_started_or_rerun(nodes: Nodes) -> None:
    a, b = diverge(nodes)
    a.stop("fast")
    marker = rewind_marker(a.config.datadir)
    marker.write_text("pg_rewind from elsewhere\n")  # what a run killed half-way leaves behind
    result = a.try_rewind(*addr(b))
    assert result.outcome is RewindOutcome.INTERRUPTED and result.returncode is None
    assert result.outcome.needs_reclone
    with pytest.raises(RewindIncomplete):
        a.start()
    aside = a.move_datadir_aside("interrupted rewind")
    assert not marker.exists() and (aside / marker.name).exists()


def test_waits_for_the_sources_checkpoint_after_promotion(nodes: Nodes) -> None:
    """Before the new primary's first checkpoint its control file still names the old timeline, and
    pg_rewind would find "no rewind required" for an old primary that has diverged: wait for it."""
    a = nodes.primary("a")
    a.query("CREATE TABLE t (i int, pad text)")
    # A slow spread checkpoint at promotion: many pages dirtied by replay, pacing over a long timeout.
    b = nodes.replica(a, "b", checkpoint_timeout="1h", checkpoint_completion_target="0.9", shared_buffers="64MB")
    a.query("INSERT INTO t SELECT i, repeat('x', 200) FROM generate_series(1, 150000) i")
    a.query("SELECT pg_switch_wal()")
    replayed_all_of(b, a)  # the replay behind b's slow checkpoint at promotion
    checkpoint_in_common(a, b)
    b.promote()
    a.query("INSERT INTO t VALUES (0, 'a only')")  # a's own, divergent history
    a.stop("fast")
    waiting = a.try_rewind(*addr(b))
    assert waiting.outcome is RewindOutcome.UNREACHABLE and "has not checkpointed" in waiting.reason
    assert waiting.returncode is None and not a.rewind_incomplete()  # pg_rewind was not run
    b.checkpoint()
    result = a.try_rewind(*addr(b))
    assert result.outcome is RewindOutcome.REWOUND, result.output
