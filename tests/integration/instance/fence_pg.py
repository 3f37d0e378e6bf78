"""Real PostgreSQL 15 servers for the pgkeel_fence tests (test_fence_extension.py).

Servers run as the postgres OS user (RunAs), on a loopback port and a private socket directory, with
trust authentication (a throwaway cluster in a temp dir). The fixtures in the test module stop every
postmaster started here by PID at teardown, also when the test failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from pgkeel.instance.process import RunAs
from pgkeel.local.layout import free_port

BINDIR = Path("/usr/lib/postgresql/15/bin")
RUN_AS = RunAs.for_current_process()


def proc_alive(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan stays Z until someone reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> float:
    """Poll `predicate` until true; return the monotonic time it became true, fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class Server:
    """One postmaster on a data directory, optionally with pgkeel_fence preloaded."""

    def __init__(self, root: Path, datadir: Path, deadline_file: Path, *, preload: bool = True,
                 extra: dict[str, str] | None = None) -> None:
        self.root = root
        self.datadir = datadir
        self.deadline_file = deadline_file
        self.preload = preload
        self.extra = extra or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "postgres.log"

    def argv(self) -> list[str]:
        opts = {"port": str(self.port), "listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.root),
                "fsync": "off"}
        if self.preload:
            opts["shared_preload_libraries"] = "pgkeel_fence"
            opts["pgkeel_fence.deadline_file"] = str(self.deadline_file)
        opts.update(self.extra)
        argv = [str(BINDIR / "postgres"), "-D", str(self.datadir)]
        for k, v in opts.items():
            argv += ["-c", f"{k}={v}"]
        return argv

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=str(self.datadir), start_new_session=True, **RUN_AS.kwargs())
        wait_for(self._ready, 30, f"postgres to accept connections (see {self.log})", 0.05)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"postgres exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        try:
            psycopg.connect(**self.conninfo(), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def conninfo(self) -> dict[str, Any]:
        return {"host": str(self.root), "port": self.port, "user": "postgres", "dbname": "postgres"}

    def connect(self, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.conninfo(), autocommit=autocommit, connect_timeout=5)
