"""The single aside slot and postgres.log bounds, on plain directories and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pgkeel.instance.aside import MARKER, AsideOccupied, aside_path, list_asides, move_aside
from pgkeel.instance.logs import previous, rotate_at_start, rotate_running, tail_lines, wal_gone_in_log
from pgkeel.instance.space import clone_space, free_bytes


def datadir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "base").mkdir(parents=True)
    (d / "PG_VERSION").write_text("15\n")
    (d / "base" / "1").write_bytes(b"x" * 5000)
    return d


def test_move_aside_records_when_and_why(tmp_path: Path) -> None:
    d = datadir(tmp_path)
    kept = move_aside(d, "diverged")
    assert kept == aside_path(d) == tmp_path / "data.aside" and not d.exists()
    marker = json.loads((kept / MARKER).read_text())
    assert marker["reason"] == "diverged" and marker["from"] == str(d) and marker["bytes"] >= 5003
    (info,) = list_asides(d)
    assert (info.path, info.reason, info.bytes) == (kept, "diverged", marker["bytes"])
    assert info.as_dict()["path"] == str(kept)


def test_second_aside_is_refused_and_moves_nothing(tmp_path: Path) -> None:
    d = datadir(tmp_path)
    move_aside(d, "first")
    d2 = datadir(tmp_path)
    with pytest.raises(AsideOccupied) as err:
        move_aside(d2, "second")
    assert err.value.existing == [aside_path(d)]
    assert "move it off this volume or remove it" in str(err.value)
    assert (d2 / "PG_VERSION").exists() and json.loads((aside_path(d) / MARKER).read_text())["reason"] == "first"


def test_legacy_old_directories_occupy_the_slot(tmp_path: Path) -> None:
    d = datadir(tmp_path)
    legacy = tmp_path / "data.old-20260101T000000"
    legacy.mkdir()
    (legacy / "PG_VERSION").write_text("15\n")
    with pytest.raises(AsideOccupied):
        move_aside(d, "x")
    (info,) = list_asides(d)
    assert info.path == legacy and info.bytes == 3 and "no marker" in info.reason
    assert list_asides(tmp_path / "other") == []


def test_rotate_at_start_keeps_one_previous(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    assert not rotate_at_start(log, 10)  # missing: nothing to do
    log.write_text("a" * 11)
    previous(log).write_text("older")
    assert rotate_at_start(log, 10)
    assert previous(log).read_text() == "a" * 11 and not log.exists()
    log.write_text("small")
    assert not rotate_at_start(log, 10) and log.read_text() == "small"


def test_rotate_running_truncates_in_place(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text("b" * 100)
    with open(log, "ab") as writer:  # what postgres holds: O_APPEND
        assert rotate_running(log, 10)
        writer.write(b"next\n")
    assert previous(log).read_text() == "b" * 100 and log.read_text() == "next\n"


START = "2026-12-02 03:50:00.000 UTC [10] LOG:  starting PostgreSQL 15.20 on x86_64-pc-linux-gnu"
STREAM = "2026-12-02 03:50:01.000 UTC [12] LOG:  started streaming WAL from primary at 0/3000000 on timeline 1"
GONE = (
    "2026-12-02 03:50:01.001 UTC [12] FATAL:  could not receive data from WAL stream: "
    "ERROR:  requested WAL segment 000000010000000000000003 has already been removed"
)
RELOAD = "2026-12-02 03:50:02.000 UTC [10] LOG:  received SIGHUP, reloading configuration files"


@pytest.mark.parametrize(
    ("lines", "lost"),
    [
        ([START, STREAM, GONE], True),
        ([START, STREAM, GONE, STREAM, GONE], True),
        ([GONE, START, STREAM], False),  # before the last start
        ([START, STREAM, GONE, RELOAD], False),  # maybe pointed elsewhere since
        ([START, STREAM, GONE, STREAM], False),  # streaming again
        ([START, STREAM], False),
        ([], False),
    ],
)
def test_wal_gone_in_log(lines: list[str], lost: bool) -> None:
    assert (wal_gone_in_log(lines) is not None) is lost


def test_tail_lines_drops_the_partial_first_line(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text("x" * 50 + "\nline two\nline three\n")
    assert tail_lines(log, 13) == ["line three"]
    assert tail_lines(log)[1:] == ["line two", "line three"]
    assert tail_lines(tmp_path / "missing") == []


def test_clone_space() -> None:
    c = clone_space(1000 * 2**20, free=2000 * 2**20)
    assert c.fits and c.needed_bytes == int(1000 * 2**20 * 1.1) + 64 * 2**20
    c = clone_space(1000 * 2**20, free=1000 * 2**20, skipped=1)
    assert not c.fits and "does NOT fit" in c.explain() and "1 database(s) not counted" in c.explain()


def test_free_bytes_of_a_missing_datadir_uses_its_parent(tmp_path: Path) -> None:
    assert free_bytes(tmp_path / "gone" / "data") == free_bytes(tmp_path) > 0
