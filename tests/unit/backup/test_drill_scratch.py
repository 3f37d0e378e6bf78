"""The drill's scratch directory: only ever emptied or deleted when it is a drill's (it carries the marker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkeel.backup.scratch import MARKER, ScratchError, prepare_scratch, remove_scratch
from pgkeel.instance.process import RunAs

NOBODY = RunAs(None)  # chown is a no-op: these tests need no postgres user


def test_a_new_scratch_directory_is_private_and_marked(tmp_path: Path) -> None:
    scratch = prepare_scratch(tmp_path / "backup" / "drill", NOBODY)
    assert (scratch / MARKER).is_file() and scratch.stat().st_mode & 0o777 == 0o700


def test_an_earlier_drills_leftover_is_emptied(tmp_path: Path) -> None:
    scratch = prepare_scratch(tmp_path / "drill", NOBODY)
    (scratch / "data").mkdir()
    (scratch / "data" / "base").write_text("old copy")
    assert prepare_scratch(scratch, NOBODY) == scratch
    assert sorted(p.name for p in scratch.iterdir()) == [MARKER]


def test_a_directory_that_is_not_a_drills_is_never_emptied(tmp_path: Path) -> None:
    precious = tmp_path / "drill"
    precious.mkdir()
    (precious / "keep.txt").write_text("not ours")
    with pytest.raises(ScratchError, match="not a drill's"):
        prepare_scratch(precious, NOBODY)
    assert remove_scratch(precious) is False
    assert (precious / "keep.txt").read_text() == "not ours"


def test_a_scratch_directory_inside_a_data_directory_is_refused(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    datadir.mkdir()
    (datadir / "PG_VERSION").write_text("15\n")
    with pytest.raises(ScratchError, match="inside the data directory"):
        prepare_scratch(datadir / "drill", NOBODY)
    assert not (datadir / "drill").exists()


def test_removing_a_drills_directory_deletes_it(tmp_path: Path) -> None:
    scratch = prepare_scratch(tmp_path / "drill", NOBODY)
    (scratch / "data").mkdir()
    assert remove_scratch(scratch) is True and not scratch.exists()
