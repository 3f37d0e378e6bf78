"""ALTER SYSTEM across a role change, and a data directory of another major, with real servers.

The agent owns four lines of postgresql.auto.conf; an operator's ALTER SYSTEM lines survive the
rewrite at every role change and are reported as drift (this node only). A data directory whose
PG_VERSION is not the binaries' major is refused before postgres is started at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from instance_nodes import Nodes, make_nodes, needs_pg15

from pgkeel.instance.files import AUTO_CONF, read_auto_conf
from pgkeel.instance.server import MajorVersionMismatch

pytestmark = [pytest.mark.integration, needs_pg15]


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def _show(inst: object, name: str) -> str:
    (row,) = inst.query(f"SHOW {name}")  # type: ignore[attr-defined]
    return str(row[0])


def test_alter_system_survives_a_switchover_and_is_reported_as_drift(
        nodes: Nodes, caplog: pytest.LogCaptureFixture) -> None:
    a = nodes.primary("a")
    b = nodes.replica(a, "b")
    nodes.wait_for(lambda: b.status().receiver_status == "streaming")
    a.query("ALTER SYSTEM SET work_mem = '32MB'")
    a.query("ALTER SYSTEM SET log_min_duration_statement = '250ms'")
    assert a.auto_conf_drift() == ["log_min_duration_statement", "work_mem"]
    assert b.auto_conf_drift() == []

    # A switchover, step by step as the agent performs it: a stops, b (caught up) is promoted, a follows b.
    a.stop("fast")
    end = a.control_data().checkpoint_lsn
    nodes.wait_for(lambda: (b.status().replay_lsn or 0) >= end)
    b.configure(standby=True, leader=None, sync_standby_names="")
    b.reload()
    b.promote()
    b.configure(standby=False, leader=None, sync_standby_names="")
    b.reload()
    b.create_slot(a.config.slot_name)  # every member holds a slot for every other (EnsureSlots)
    with caplog.at_level(logging.WARNING, logger="pgkeel.instance"):
        a.configure(standby=True, leader=(b.config.host, b.config.port), sync_standby_names="")
    a.start()

    assert a.status().in_recovery and a.configured_leader() == f"{b.config.host}:{b.config.port}"
    assert _show(a, "work_mem") == "32MB"  # kept through the rewrite of postgresql.auto.conf
    assert _show(a, "log_min_duration_statement") == "250ms"
    assert a.auto_conf_drift() == ["log_min_duration_statement", "work_mem"]
    (warning,) = [r.getMessage() for r in caplog.records if "outside the cluster's document" in r.getMessage()]
    assert "log_min_duration_statement, work_mem" in warning and "spec.postgres.parameters" in warning
    # The agent's own lines were replaced, not duplicated, although ALTER SYSTEM had rewritten the file.
    text = (a.config.datadir / AUTO_CONF).read_text()
    assert text.count("\nprimary_conninfo = ") == 1 and text.count("\nwork_mem = ") == 1
    nodes.wait_for(lambda: a.status().receiver_status == "streaming")
    assert "primary_conninfo" not in read_auto_conf(b.config.datadir)  # b leads: its standby lines are gone


def test_alter_system_reset_clears_the_drift(nodes: Nodes) -> None:
    a = nodes.primary("a")
    a.query("ALTER SYSTEM SET work_mem = '32MB'")
    a.query("ALTER SYSTEM RESET work_mem")
    a.configure(standby=False, leader=None, sync_standby_names="")
    assert a.auto_conf_drift() == []


def test_a_data_directory_of_another_major_is_refused_before_postgres_starts(nodes: Nodes) -> None:
    a = nodes.primary("a")
    a.stop("fast")
    version = a.config.datadir / "PG_VERSION"
    version.write_text("16\n")  # as a data directory made by PostgreSQL 16 looks to these 15 binaries
    log_before = a.config.log_file.stat().st_size
    with pytest.raises(MajorVersionMismatch) as refused:
        a.start(timeout=10)
    message = str(refused.value)
    assert "PostgreSQL 16 data (PG_VERSION)" in message and "is PostgreSQL 15" in message
    assert "Major upgrades are not supported yet" in message
    assert not a.is_running()
    assert a.config.log_file.stat().st_size == log_before  # postgres was never started
    version.write_text("15\n")
    a.start()  # the same data directory with matching binaries starts
    assert a.is_running()
