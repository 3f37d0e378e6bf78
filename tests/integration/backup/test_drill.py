"""Restore drills on a real PostgreSQL 15 + pgBackRest: green for a good backup, red naming what broke.

A good backup with writes (and canary rows) after it recovers to the last archived write, pg_amcheck
passes, the scratch copy is gone afterwards and the repository's archive gained nothing from the
drill's promotion (no history file of a new timeline). Red: a backup file overwritten in the
repository fails the restore; a page corrupted on the primary before the backup restores but
pg_amcheck finds it; an archived segment deleted between the backup and the archive's end is a gap
the drill names, although PostgreSQL itself promotes at the gap without complaint; a repository
without a backup is refused before anything is made.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from backup_lab import STANZA, Lab
from instance_nodes import BINDIR, needs_pg15

from pgkeel.backup.canary import read_canary, write_canary
from pgkeel.backup.drill import REQUIRED, DrillSetup, run_drill
from pgkeel.backup.drill_result import ARCHIVE_END, DrillResult
from pgkeel.instance import Instance
from pgkeel.instance.lsn import parse_lsn

pytestmark = [
    pytest.mark.integration,
    needs_pg15,
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest not installed"),
]


def _backed_up_primary(lab: Lab) -> tuple[Instance, str]:
    primary = lab.nodes.primary(**lab.gucs())
    primary.query("CREATE TABLE t (id int PRIMARY KEY)")
    lab.engine.ensure_stanza(lab.host(primary))
    return primary, lab.engine.backup("full", lab.host(primary), None).label


def _drill(lab: Lab) -> tuple[DrillResult, Path]:
    setup = DrillSetup(scratch=lab.nodes.root / "drill", bindir=BINDIR, timeout=120)
    result = run_drill(lab.engine, setup)
    print("\n", result.as_dict())
    return result, setup.scratch


def _archive_files(lab: Lab) -> set[str]:
    return {p.name for p in (lab.repo / "archive" / STANZA).rglob("*") if p.is_file()}


def test_a_good_backup_recovers_the_last_archived_write_and_the_drill_adds_nothing_to_the_archive(lab: Lab) -> None:
    primary, label = _backed_up_primary(lab)
    primary.query("INSERT INTO t SELECT generate_series(1, 500)")
    for _ in range(3):
        written = write_canary(primary.query, "a")
    last_write = parse_lsn(primary.query("SELECT pg_current_wal_lsn()::text")[0][0])
    lab.archived_through(primary)
    before = _archive_files(lab)

    result, scratch = _drill(lab)

    assert result.ok, result.failure
    assert result.backup == label and result.error is None and result.failure is None
    assert {c.name for c in result.checks} == REQUIRED
    assert result.canary_rows == 3 and result.recovered_time is not None and result.recovered_time >= written
    assert (parse_lsn(result.recovered_lsn) or 0) >= (last_write or 0)
    assert result.recovered_timeline == 1
    assert "no corruption" in next(c.detail for c in result.checks if c.name == "amcheck")
    assert not scratch.exists()
    added = _archive_files(lab) - before
    assert not [name for name in added if not name.startswith("00000001")], added  # only the real primary's WAL
    assert not list((lab.repo / "archive" / STANZA).rglob("*.history"))
    canary = read_canary(primary.query)
    assert canary is not None and canary.rows == 3 and canary.member == "a"


def test_a_corrupt_backup_file_fails_the_restore_and_the_drill_says_so(lab: Lab) -> None:
    _, label = _backed_up_primary(lab)
    files = [p for p in (lab.repo / "backup" / STANZA / label / "pg_data").rglob("*") if p.is_file()]
    victim = max(files, key=lambda p: p.stat().st_size)
    with victim.open("r+b") as f:
        f.seek(victim.stat().st_size // 2)
        f.write(b"\xde\xad\xbe\xef" * 64)

    result, scratch = _drill(lab)

    assert not result.ok
    assert [(c.name, c.ok) for c in result.checks] == [("restore", False)]  # nothing after it ran
    assert result.error == result.checks[0].detail
    assert result.error.startswith(f"backup {label} does not restore: pgbackrest restore failed")
    assert "ERROR: [" in result.error  # pgBackRest's own reason (lz4 error, or a checksum mismatch)
    assert not scratch.exists()


def test_a_page_corrupt_on_the_primary_before_the_backup_restores_but_pg_amcheck_finds_it(lab: Lab) -> None:
    primary = lab.nodes.primary(**lab.gucs())
    primary.query("CREATE TABLE bad AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 500) g")
    relation = lab.nodes.root / "a" / "data" / str(primary.query("SELECT pg_relation_filepath('bad')")[0][0])
    primary.stop("fast")  # flushed: the page on disk is the one the backup copies
    with relation.open("r+b") as f:
        f.seek(4000)  # inside block 0's tuples: its checksum no longer matches
        f.write(b"\xff" * 16)
    primary.start()
    lab.engine.ensure_stanza(lab.host(primary))
    lab.engine.backup("full", lab.host(primary), None)

    result, scratch = _drill(lab)

    assert not result.ok and result.error is None
    amcheck = next(c for c in result.checks if c.name == "amcheck")
    assert not amcheck.ok and "bad" in amcheck.detail, amcheck.detail
    assert [c.name for c in result.checks if not c.ok] == ["amcheck"]  # restored and replayed fine
    assert not scratch.exists()


def test_a_segment_deleted_between_the_backup_and_the_archive_end_is_a_gap_the_drill_names(lab: Lab) -> None:
    primary, _ = _backed_up_primary(lab)
    segments = []
    for i in range(3):
        primary.query("INSERT INTO t VALUES (%s)", (i,))
        segments.append(lab.archived_through(primary))
    (gone,) = list((lab.repo / "archive" / STANZA).rglob(f"{segments[1]}-*"))
    gone.unlink()

    result, scratch = _drill(lab)

    assert not result.ok and result.error is None
    end = next(c for c in result.checks if c.name == ARCHIVE_END)
    assert not end.ok
    assert f"segment {segments[1]} is missing from the archive" in end.detail
    assert result.failure is not None and "gap in the archive" in result.failure
    assert not scratch.exists()


def test_a_repository_without_a_backup_is_red_and_says_to_take_one(lab: Lab) -> None:
    result, scratch = _drill(lab)
    assert not result.ok and result.checks == ()
    assert result.error is not None and "take one with `pgkeel backup now`" in result.error
    assert not scratch.exists()  # refused before anything was made
