"""postmaster.pid: which live process, if any, is the postmaster of a data directory.

A PID in the file proves nothing by itself: the postmaster may be long dead and its PID reused,
on a host with several nodes even by another node's postmaster. A PID is trusted only when that
process runs a `postgres` binary and its working directory is this data directory (the
postmaster chdirs to PGDATA before it writes the file, and its children inherit that), so stop()
and fencing never signal another node's server.
"""

from __future__ import annotations

import os
from pathlib import Path

PIDFILE = "postmaster.pid"


def read_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / PIDFILE).read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def owns_datadir(pid: int, datadir: Path) -> bool:
    """`pid` is a live postgres process whose working directory is `datadir`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False  # gone, a zombie, or not ours to inspect: not provably this node's postmaster
    if not cmdline or not cmdline[0].endswith(b"postgres"):
        return False
    return Path(cwd) == datadir.resolve()


def live_postmaster(datadir: Path, child_pid: int | None) -> int | None:
    """The PID in the file when it is alive and provably this directory's (or our own child)."""
    pid = read_pid(datadir)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    if pid == child_pid:
        return pid
    return pid if owns_datadir(pid, datadir) else None


def startup_status(datadir: Path) -> str | None:
    """'starting' | 'ready' | 'standby' | 'stopping' from postmaster.pid, None when absent."""
    try:
        lines = (datadir / PIDFILE).read_text().splitlines()
    except OSError:
        return None
    return lines[7].strip() if len(lines) > 7 else "starting"


def clear_stale(datadir: Path) -> None:
    """Remove a postmaster.pid whose process is gone, a zombie, or not a postgres of this directory.

    PostgreSQL refuses to start while the PID in its lock file exists, and an orphaned
    postmaster killed with SIGKILL stays a zombie until init reaps it, which on some machines
    takes a while; a reused PID would block the start for as long as that process lives.
    Only called when no live postmaster owns the data directory.
    """
    pid = read_pid(datadir)
    if pid is None:
        return
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "gone"
    if state in ("gone", "Z") or not owns_datadir(pid, datadir):
        (datadir / PIDFILE).unlink(missing_ok=True)
