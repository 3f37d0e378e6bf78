"""pgBackRest behind the engine interface, on a real PostgreSQL 15 and a posix repository in a temp dir.

archive_command/restore_command are the ones pgconf renders for the document, so these tests also
prove the rendered commands work. PITR exactness: rows committed one by one with their commit
times; a restore to a time between two of them has exactly the rows committed up to it.
"""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from backup_lab import Lab
from instance_nodes import chown_pg, needs_pg15

from pgkeel.backup import Target, TargetError, choose_backup, target_of
from pgkeel.document.backup import RecoveryTarget
from pgkeel.instance import Instance

pytestmark = [
    pytest.mark.integration,
    needs_pg15,
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest not installed"),
]


def _restored(lab: Lab, name: str, target: Target, backup_set: str | None) -> Instance:
    inst = lab.nodes.make(name, **lab.gucs())
    inst.config.datadir.mkdir(mode=0o700)
    chown_pg(inst.config.datadir)
    lab.engine.restore(inst.config.datadir, target, backup_set)
    inst.start(timeout=120)
    lab.nodes.wait_for(lambda: not inst.query("SELECT pg_is_in_recovery()")[0][0], timeout=120)
    return inst


def test_rendered_archive_command_pushes_segments_and_archive_get_returns_them(lab: Lab) -> None:
    primary = lab.nodes.primary(**lab.gucs())
    assert lab.engine.ensure_stanza(lab.host(primary)) is True
    assert lab.engine.ensure_stanza(lab.host(primary)) is False  # idempotent: the stanza exists and matches
    segment = lab.archived_through(primary)
    assert primary.query("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0
    state = lab.engine.info()
    assert state.wal_max is not None and state.wal_max >= segment
    out = lab.nodes.root / "got"
    out.mkdir()
    chown_pg(out)
    datadir = primary.config.datadir
    assert lab.engine.archive_get(segment, out / "seg", datadir) is True
    assert (out / "seg").stat().st_size == 16 * 2**20
    assert lab.engine.archive_get("0000000100000000000000FF", out / "none", datadir) is False


def test_restore_to_a_time_between_two_commits_has_exactly_the_rows_committed_by_then(lab: Lab) -> None:
    primary = lab.nodes.primary(**lab.gucs())
    primary.query("CREATE TABLE t (id int PRIMARY KEY)")
    lab.engine.ensure_stanza(lab.host(primary))
    made = lab.engine.backup("full", lab.host(primary), None)
    assert made.type == "full" and made.size > 0
    committed: list[tuple[int, datetime]] = []
    for i in range(1, 7):
        primary.query("INSERT INTO t VALUES (%s)", (i,))  # autocommit: one transaction per row
        committed.append((i, primary.query("SELECT clock_timestamp()")[0][0]))  # after its commit record
        time.sleep(0.3)
    lab.archived_through(primary)
    cut = committed[2][1]  # after row 3's commit, before row 4's
    target = target_of(RecoveryTarget(time=cut))
    chosen = choose_backup(lab.engine.info(), target, datetime.now(UTC))
    assert chosen.label == made.label
    restored = _restored(lab, "pitr", target, chosen.label)
    rows = [r[0] for r in restored.query("SELECT id FROM t ORDER BY id")]
    assert rows == [i for i, at in committed if at <= cut] == [1, 2, 3]


def test_restore_to_latest_replays_the_whole_archive_and_expire_keeps_the_retention(lab: Lab) -> None:
    primary = lab.nodes.primary(**lab.gucs())
    primary.query("CREATE TABLE t (id int)")
    lab.engine.ensure_stanza(lab.host(primary))
    labels = []
    for i in range(3):
        primary.query("INSERT INTO t VALUES (%s)", (i,))
        labels.append(lab.engine.backup("full", lab.host(primary), None).label)
        lab.engine.expire()
    kept = [b.label for b in lab.engine.info().backups]
    assert kept == labels[1:]  # retention.full: 2
    primary.query("INSERT INTO t SELECT generate_series(10, 19)")
    lab.archived_through(primary)
    restored = _restored(lab, "latest", Target("latest"), None)
    assert restored.query("SELECT count(*) FROM t")[0][0] == 13


def test_targets_no_backup_reaches_are_refused_before_any_restore(lab: Lab) -> None:
    primary = lab.nodes.primary(**lab.gucs())
    lab.engine.ensure_stanza(lab.host(primary))
    made = lab.engine.backup("full", lab.host(primary), None)
    state = lab.engine.info()
    now = datetime.now(UTC)
    with pytest.raises(TargetError, match=r"before the oldest backup"):
        choose_backup(state, target_of(RecoveryTarget(time=made.started - timedelta(hours=1))), now)
    with pytest.raises(TargetError, match=r"after the end of the archive"):
        choose_backup(state, target_of(RecoveryTarget(time=now + timedelta(hours=1))), now)
    with pytest.raises(TargetError, match=r"after the end of the archive"):
        choose_backup(state, target_of(RecoveryTarget(lsn="FF/0")), now)
    with pytest.raises(TargetError, match=r"before the oldest backup"):
        choose_backup(state, target_of(RecoveryTarget(lsn="0/1")), now)


def test_a_backup_taken_under_write_load_restores_every_write_acknowledged_before_the_archive_end(lab: Lab) -> None:
    primary = lab.nodes.primary(**lab.gucs())
    primary.query("CREATE TABLE load (id bigint PRIMARY KEY, payload text)")
    lab.engine.ensure_stanza(lab.host(primary))
    acked: list[int] = []
    stop = threading.Event()

    def write() -> None:  # its own connection: the Instance's is used by the test meanwhile
        c = primary.config
        with psycopg.connect(host=str(c.socket_dir), port=c.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            i = 0
            while not stop.is_set():
                i += 1
                conn.execute("INSERT INTO load VALUES (%s, repeat('x', 2000))", (i,))
                acked.append(i)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        lab.nodes.wait_for(lambda: len(acked) > 500, timeout=30)
        during = len(acked)
        backup = lab.engine.backup("full", lab.host(primary), None)  # files change under pgBackRest meanwhile
        after = len(acked)
        lab.nodes.wait_for(lambda: len(acked) > after + 500, timeout=30)
    finally:
        stop.set()
        writer.join(timeout=10)
    print(f"rows: {during} before the backup, {after - during} during it, {len(acked)} in all")
    assert after > during  # writes went on while the backup copied
    lab.archived_through(primary)
    restored = _restored(lab, "under-load", Target("latest"), backup.label)
    ids = [r[0] for r in restored.query("SELECT id FROM load ORDER BY id")]
    assert ids == list(range(1, len(acked) + 1))  # every acknowledged write, none twice, no hole
    assert restored.query("SELECT count(*) FROM load WHERE payload <> repeat('x', 2000)")[0][0] == 0
