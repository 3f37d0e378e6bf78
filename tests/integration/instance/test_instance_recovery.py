"""Lost WAL, PID trust, log rotation and free space, with real servers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import psycopg
import pytest
from instance_nodes import Nodes, make_nodes, needs_pg15

from pgkeel.instance import AsideOccupied
from pgkeel.instance.logs import previous

pytestmark = [pytest.mark.integration, needs_pg15]


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def test_invalidated_slot_and_wal_source_lost(nodes: Nodes) -> None:
    """F13: a replica away past max_slot_wal_keep_size; the leader recycled the WAL it needs."""
    a = nodes.primary("a", max_slot_wal_keep_size="16MB", min_wal_size="32MB", max_wal_size="32MB")
    a.query("CREATE TABLE t (i int)")
    b = nodes.replica(a, "b")
    slot = b.config.slot_name
    nodes.wait_for(lambda: b.status().receiver_status == "streaming")
    assert a.slot_states()[slot].wal_status == "reserved"
    assert not b.wal_source_lost() and not a.wal_source_lost()
    b.stop("fast")

    def lost() -> bool:
        for _ in range(3):
            a.query("INSERT INTO t VALUES (1)")
            a.query("SELECT pg_switch_wal()")
        a.query("CHECKPOINT")
        return a.slot_states()[slot].lost

    nodes.wait_for(lost, timeout=60, every=0)
    state = a.slot_states()[slot]
    assert state.restart_lsn is None and not state.active
    b.start()
    nodes.wait_for(b.wal_source_lost, timeout=30)
    assert not a.wal_source_lost()
    # a restart forgets what the log said before it, until the walreceiver says it again
    b.stop("fast")
    b.start()
    nodes.wait_for(b.wal_source_lost, timeout=30)


def test_stale_pidfile_pointing_at_another_nodes_postmaster(nodes: Nodes) -> None:
    a = nodes.primary("a")
    b = nodes.primary("b")
    b_pid = b.postmaster_pid()
    assert b_pid is not None and a.postmaster_pid() not in (None, b_pid)
    a.stop("fast")
    # A's pidfile now names B's postmaster (a PID reused after A's postmaster died)
    pidfile = a.config.datadir / "postmaster.pid"
    pidfile.write_text((b.config.datadir / "postmaster.pid").read_text())
    assert a.postmaster_pid() is None and not a.is_running()
    a.stop("immediate", timeout=2)  # must not signal B
    a.reload()
    assert b.postmaster_pid() == b_pid
    b.query("SELECT 1")
    a.start()  # the foreign PID does not block A's start either
    assert a.postmaster_pid() not in (None, b_pid)
    assert b.postmaster_pid() == b_pid


def test_log_rotated_at_start_and_while_running(nodes: Nodes) -> None:
    a = nodes.primary("a")
    a.stop("fast")
    log = a.config.log_file
    a.config = type(a.config)(**{**a.config.__dict__, "log_max_bytes": 4096})
    with open(log, "a") as fh:
        fh.write("old line\n" * 1000)
    a.start()
    assert previous(log).read_text().count("old line") == 1000
    assert "old line" not in log.read_text() and log.stat().st_size < 4096
    with open(log, "a") as fh:
        fh.write("while running\n" * 1000)
    assert a.rotate_log()
    assert "while running" in previous(log).read_text()
    a.query("SELECT pg_reload_conf()")
    text = nodes.wait_for(lambda: "received SIGHUP" in log.read_text() and log.read_text())
    assert isinstance(text, str) and not text.startswith("\0")  # O_APPEND: writes go to the new end
    assert not a.rotate_log()  # under the bound now


def test_free_space_and_source_size(nodes: Nodes) -> None:
    a = nodes.primary("a")
    b = nodes.make("b")
    usage = shutil.disk_usage(nodes.root)
    assert abs(b.free_bytes() - usage.free) < usage.total // 10  # root reserve may differ
    check = b.clone_space(a.config.host, a.config.port)
    assert 5 * 2**20 < check.source_bytes < 500 * 2**20
    assert check.skipped_databases == 0 and check.fits and "fits" in check.explain()
    a.stop("fast")
    with pytest.raises(psycopg.OperationalError):
        b.clone_space(a.config.host, a.config.port)


def test_one_aside_copy_then_refusal(nodes: Nodes) -> None:
    a = nodes.primary("a")
    b = nodes.replica(a, "b")
    b.stop("fast")
    kept = b.move_datadir_aside("rewind diverged beyond rewind")
    b.basebackup(a.config.host, a.config.port)
    (info,) = b.asides()
    assert info.path == kept and info.reason == "rewind diverged beyond rewind" and info.bytes > 5 * 2**20
    with pytest.raises(AsideOccupied) as err:
        b.move_datadir_aside("second")
    assert str(kept) in str(err.value)
    assert b.has_data() and kept.exists()  # nothing moved, nothing deleted
