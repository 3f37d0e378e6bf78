"""The drill's scratch directory: made fresh for each drill, deleted after it, and never anything else.

A drill restores a whole copy of the database, so deleting it afterwards must not be able to delete
anything else. The directory is only ever emptied or removed when it carries our marker file,
written first thing after creating it; a directory without the marker that is not empty is refused,
and so is a path inside a data directory (a PG_VERSION in it or above it).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from pgkeel.instance.pidfile import live_postmaster
from pgkeel.instance.process import RunAs

MARKER = ".pgkeel-drill"


class ScratchError(RuntimeError):
    """The scratch directory cannot be used without risking data that is not the drill's."""


def _inside_data_directory(path: Path) -> Path | None:
    return next((p for p in (path, *path.parents) if (p / "PG_VERSION").exists()), None)


def _stop_leftover(datadir: Path, timeout: float = 30.0) -> None:
    """A postgres an interrupted drill left running on its copy: provably on this directory, so ours to stop."""
    pid = live_postmaster(datadir, None)
    if pid is None:
        return
    os.kill(pid, signal.SIGQUIT)  # immediate: the copy is thrown away
    deadline = time.monotonic() + timeout
    while live_postmaster(datadir, None) == pid:
        if time.monotonic() > deadline:
            raise ScratchError(f"a drill's postgres (pid {pid}) on {datadir} did not stop within {timeout:g}s")
        time.sleep(0.05)


def remove_scratch(path: Path) -> bool:
    """Delete the directory when it is a drill's (it has the marker); True when removed."""
    if not (path / MARKER).is_file():
        return False
    _stop_leftover(path / "data")
    shutil.rmtree(path)
    return True


def prepare_scratch(path: Path, run_as: RunAs) -> Path:
    """An empty directory for one drill (0700, owned by postgres), marked as the drill's; its absolute path."""
    path = path.absolute()
    if (datadir := _inside_data_directory(path)) is not None:
        raise ScratchError(f"the drill directory {path} is inside the data directory {datadir}: refusing to use it")
    if path.exists() and not remove_scratch(path) and any(path.iterdir()):
        raise ScratchError(f"{path} is not empty and is not a drill's (no {MARKER} in it): refusing to empty it; "
                           "choose another drill directory or remove it yourself")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    (path / MARKER).write_text("a pgkeel restore drill's scratch copy: deleted after each drill\n")
    os.chmod(path, 0o700)
    run_as.chown(path)
    return path
