"""postmaster.pid trust without a server: only a postgres whose cwd is the data directory counts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pgkeel.instance.pidfile import clear_stale, live_postmaster, owns_datadir, read_pid, startup_status


def write_pidfile(d: Path, pid: int, status: str = "ready") -> None:
    d.mkdir(exist_ok=True)
    (d / "postmaster.pid").write_text(f"{pid}\n{d}\n1700000000\n5432\n/tmp\n127.0.0.1\n  1  2\n{status}\n")


def test_a_live_process_that_is_not_postgres_is_not_trusted(tmp_path: Path) -> None:
    d = tmp_path / "data"
    write_pidfile(d, os.getpid())  # alive, but python, and its cwd is elsewhere
    assert read_pid(d) == os.getpid() and startup_status(d) == "ready"
    assert not owns_datadir(os.getpid(), d)
    assert live_postmaster(d, child_pid=None) is None
    assert live_postmaster(d, child_pid=os.getpid()) == os.getpid()  # our own child is trusted
    clear_stale(d)
    assert not (d / "postmaster.pid").exists()


def test_a_dead_pid_is_cleared(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    d = tmp_path / "data"
    write_pidfile(d, proc.pid, "starting")
    assert live_postmaster(d, None) is None
    clear_stale(d)
    assert read_pid(d) is None and startup_status(d) is None


def test_garbage_pidfile(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    (d / "postmaster.pid").write_text("not a pid\n")
    assert read_pid(d) is None and live_postmaster(d, None) is None and startup_status(d) == "starting"
