"""Fallback fence for machines where the pgkeel_fence library cannot load into postgres.

`python -m pgkeel.instance.watchdog --deadline-file F --datadir D` polls the deadline file every
20 ms and, once it is armed and its deadline has passed (or it is malformed, or from another
boot while armed), SIGKILLs the postmaster of D and all its children, so that a frozen or dead
agent cannot leave a writable primary behind. It runs in its own session: `kill -9` of the agent
leaves it running. A disarmed file is left alone (replicas and deliberately stopped nodes).
It exits when the deadline file is removed, or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pgkeel.instance.fence import FenceFileError, boottime, read_file

POLL_INTERVAL = 0.02


def postmaster_of(datadir: Path) -> int | None:
    """The live postmaster of `datadir`: PID from postmaster.pid, verified by /proc/<pid>/cwd."""
    try:
        pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError, IndexError):
        return None
    if os.path.realpath(cwd) != os.path.realpath(datadir):
        return None  # a recycled PID, not our postmaster
    return pid


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (/proc/*/stat field 4)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def kill_postmaster(pid: int) -> list[int]:
    """Stop the postmaster (no new children), SIGKILL its children, then it; return who was killed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
    killed = children_of(pid)
    for child in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return [*killed, pid]


def must_kill(deadline_file: Path) -> bool | None:
    """True when the file says "fenced now"; False when writable or disarmed; None when it is gone."""
    try:
        state = read_file(deadline_file)
    except FileNotFoundError:
        return None
    except FenceFileError:
        return True  # fail closed: an unreadable or malformed file never protects a primary
    if not state.armed:
        return False
    return not state.boot_id_matches or state.remaining(boottime()) <= 0


def watch(deadline_file: Path, datadir: Path, interval: float = POLL_INTERVAL) -> int:
    """The poll loop; returns the exit code."""
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    print(f"pgkeel-watchdog: watching {deadline_file} for {datadir}", file=sys.stderr, flush=True)
    while not stopping:
        verdict = must_kill(deadline_file)
        if verdict is None:
            print(f"pgkeel-watchdog: {deadline_file} removed; exiting", file=sys.stderr, flush=True)
            return 0
        if verdict:
            pid = postmaster_of(datadir)
            if pid is not None:
                killed = kill_postmaster(pid)
                print(
                    f"pgkeel-watchdog: lease deadline passed; killed postmaster {pid} and {len(killed) - 1} children",
                    file=sys.stderr,
                    flush=True,
                )
        time.sleep(interval)
    return 0


def spawn(
    deadline_file: Path, datadir: Path, log_file: Path | None = None, python: str = sys.executable
) -> subprocess.Popen[bytes]:
    """Start the watchdog in its own session (it outlives the agent); the caller keeps the Popen."""
    argv = [python, "-m", "pgkeel.instance.watchdog", "--deadline-file", str(deadline_file), "--datadir", str(datadir)]
    log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        if not isinstance(log, int):
            log.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgkeel.instance.watchdog", description=__doc__.splitlines()[0])
    parser.add_argument("--deadline-file", type=Path, required=True)
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=POLL_INTERVAL, help="poll interval in seconds")
    args = parser.parse_args(argv)
    return watch(args.deadline_file, args.datadir, args.interval)


if __name__ == "__main__":
    sys.exit(main())
