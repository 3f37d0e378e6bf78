"""What a replica reports about its positions, with real servers: received and replayed apart, replay
paused, replay lag in seconds; and pending_restart as it stands now, without our command-line overrides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from instance_nodes import Nodes, make_nodes, needs_pg15

from pgkeel.instance import Instance, ServerStatus

pytestmark = [pytest.mark.integration, needs_pg15]

MB = 1 << 20


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def _flush_lsn(primary: Instance) -> int:
    lsn = primary.status().lsn
    assert lsn > 0
    return lsn


def _caught_up(replica: Instance, primary: Instance) -> ServerStatus | None:
    st = replica.status()
    target = _flush_lsn(primary)
    return st if (st.replay_lsn or 0) >= target and (st.receive_lsn or 0) >= target else None


def test_paused_replay_shows_replay_lag_while_receive_lag_is_zero(nodes: Nodes) -> None:
    a = nodes.primary("a")
    b = nodes.replica(a, "b")
    a.query("CREATE TABLE t (i int, pad text)")
    caught_up = nodes.wait_for(lambda: _caught_up(b, a))
    assert isinstance(caught_up, ServerStatus)
    assert caught_up.replay_paused is False and caught_up.replay_lag_seconds == 0.0
    assert a.status().replay_paused is None and a.status().receive_lsn is None

    b.query("SELECT pg_wal_replay_pause()")
    nodes.wait_for(lambda: b.query("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused")
    a.query("INSERT INTO t SELECT i, repeat('x', 1000) FROM generate_series(1, 8000) i")  # ~9 MB of WAL
    target = _flush_lsn(a)
    nodes.wait_for(lambda: (b.status().receive_lsn or 0) >= target)

    st = b.status()
    assert st.replay_paused is True
    assert st.receive_lsn is not None and st.replay_lsn is not None
    assert target - st.receive_lsn <= 0  # everything received ...
    assert st.receive_lsn - st.replay_lsn > 4 * MB  # ... megabytes of it not replayed
    assert st.replay_lag_seconds is not None and st.replay_lag_seconds > 0

    b.query("SELECT pg_wal_replay_resume()")
    resumed = nodes.wait_for(lambda: _caught_up(b, a))
    assert isinstance(resumed, ServerStatus)
    assert resumed.replay_paused is False and resumed.replay_lag_seconds == 0.0


def test_pending_restart_omits_command_line_overrides_and_clears_after_restart(nodes: Nodes) -> None:
    a = nodes.primary("a")
    assert a.status().pending_restart == ()
    assert (a.status().version or "").startswith("15.")
    # The file names another port and address (we override both with -c) and a new shared_buffers.
    conf = a.config.config_file
    conf.write_text(conf.read_text() + "port = 1\nlisten_addresses = '*'\nshared_buffers = 24MB\n")
    a.reload()
    nodes.wait_for(lambda: a.status().pending_restart != ())
    assert a.status().pending_restart == ("shared_buffers",)
    a.stop("fast")
    a.start()
    assert a.status().pending_restart == ()
