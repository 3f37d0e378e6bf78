"""`pgkeel logs --follow` reads whole new lines, and survives both ways postgres.log is rotated."""

from __future__ import annotations

import os
from pathlib import Path

from pgkeel.local.log_files import _Followed


def test_only_lines_written_after_the_start_come_whole_and_in_order(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text("old line\n")
    f = _Followed(log)
    assert f.new_lines() == []
    with log.open("a") as out:
        out.write("one\ntw")
    assert f.new_lines() == ["one\n"]
    with log.open("a") as out:
        out.write("o\n")
    assert f.new_lines() == ["two\n"]


def test_copy_and_truncate_and_rename_rotations_are_read_from_the_new_start(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text("a long first line that is longer than what follows\n")
    f = _Followed(log)
    log.write_text("short\n")  # truncated in place (pgkeel.instance.logs, while postgres runs)
    assert f.new_lines() == ["short\n"]
    os.rename(log, tmp_path / "postgres.log.1")  # renamed at a start, a new file in its place
    assert f.new_lines() == []
    log.write_text("new file\nand more\n")
    assert f.new_lines() == ["new file\n", "and more\n"]


def test_a_missing_file_yields_nothing_until_it_appears(tmp_path: Path) -> None:
    f = _Followed(tmp_path / "agent.log")
    assert f.new_lines() == []
    (tmp_path / "agent.log").write_text("started\n")
    assert f.new_lines() == ["started\n"]
