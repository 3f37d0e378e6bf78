"""Writers that log every attempt: the evidence the checks judge.

Each writer inserts unique ids one at a time (autocommit). An attempt is `ack` when the commit
returned cleanly, `indeterminate` when it returned with PostgreSQL's WARNING that the wait for
synchronous replication was cancelled (committed locally, maybe not replicated), and `fail` when
it raised. A client gives up on a statement after `deadline` seconds by shutting its socket down,
as a real application with a timeout would (a paused server otherwise holds it forever).

The multi-host writer treats "read-only transaction" (SQLSTATE 25006: a standby, or a primary whose
lease fence refuses commits) as "not the primary": it reconnects, and libpq's
target_session_attrs=read-write picks the server again. A pinned writer keeps its connection and
probes every 100 ms: it is there to catch a node that acknowledges what it should not.

`steady_writer` is the benchmarks' writer (bench/): one commit every 20 ms, reconnecting on any
error, never cutting a statement short; what they report is the longest gap between two commits.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors

TABLE = "lab_writes"
SCHEMA = f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, writer text NOT NULL)"


@dataclass(frozen=True)
class Attempt:
    id: int
    writer: str  # "rw" (multi-host read-write) or the node a pinned writer targets
    node: str | None  # server address that answered (None when no connection)
    t_send: float  # time.monotonic()
    t_done: float
    outcome: str  # "ack" | "indeterminate" | "fail"


class Writer(threading.Thread):
    def __init__(
        self,
        label: str,
        conninfo: str,
        id_base: int,
        interval: float = 0.015,
        deadline: float = 2.0,
        reconnect_on_read_only: bool = False,
        connect_pause: float = 0.05,
        read_only_pause: float = 0.1,
    ) -> None:
        super().__init__(name=f"lab-writer-{label}", daemon=True)
        self.label = label
        self.reconnect_on_read_only = reconnect_on_read_only
        self.conninfo = conninfo
        self.ids = itertools.count(id_base)
        self.interval = interval
        self.deadline = deadline
        self.connect_pause = connect_pause  # before the next try after a connection failed
        self.read_only_pause = read_only_pause  # after a read-only refusal (a pinned writer on a replica)
        self.log: list[Attempt] = []
        self.connect_failures = 0  # connections that failed (no Attempt is logged for them)
        self._halt = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._inflight_since: float | None = None
        self._warned = False
        self._watchdog = threading.Thread(target=self._watch, name=f"{self.name}-watchdog", daemon=True)

    def stop(self) -> None:
        self._halt.set()

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        if (diag.severity_nonlocalized or diag.severity) == "WARNING" and "synchronous replication" in (
            diag.message_primary or ""
        ):
            self._warned = True

    def _watch(self) -> None:
        while not self._halt.is_set() or self._inflight_since is not None:
            since, conn = self._inflight_since, self._conn
            if since is not None and conn is not None and time.monotonic() - since > self.deadline:
                with contextlib.suppress(OSError, psycopg.Error):
                    sock = socket.socket(fileno=os.dup(conn.fileno()))
                    with sock:
                        sock.shutdown(socket.SHUT_RDWR)
                self._inflight_since = None
            time.sleep(0.05)

    def _connect(self) -> bool:
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error:
            return False
        conn.add_notice_handler(self._notice)
        self._conn = conn
        return True

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def run(self) -> None:
        self._watchdog.start()
        try:
            while not self._halt.is_set():
                if self._conn is None and not self._connect():
                    self.connect_failures += 1
                    time.sleep(self.connect_pause)
                    continue
                conn = self._conn
                assert conn is not None
                ident = next(self.ids)
                self._warned = False
                node = conn.info.host
                t_send = time.monotonic()
                self._inflight_since = t_send
                outcome = "fail"
                read_only = False
                try:
                    conn.execute(f"INSERT INTO {TABLE} (id, writer) VALUES (%s, %s)", (ident, self.label))
                    outcome = "indeterminate" if self._warned else "ack"
                except pg_errors.ReadOnlySqlTransaction:
                    read_only = True
                    if self.reconnect_on_read_only:
                        self._drop()
                except psycopg.Error:
                    self._drop()
                finally:
                    self._inflight_since = None
                self.log.append(Attempt(ident, self.label, node, t_send, time.monotonic(), outcome))
                time.sleep(self.read_only_pause if read_only else self.interval)
        finally:
            self._drop()

    # --- what the benchmarks read (bench/): the times the client saw a commit succeed -------------
    def commits(self) -> list[float]:
        """When each successful commit returned (ack, or indeterminate: the client saw no error), in order."""
        return [a.t_done for a in self.log if a.outcome != "fail"]

    @property
    def errors(self) -> int:
        """Failed statements and failed connections: each one a reconnect."""
        return sum(a.outcome == "fail" for a in self.log) + self.connect_failures

    def wait_commits(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` more commits landed; TimeoutError after `timeout` seconds."""
        target = len(self.commits()) + count
        deadline = time.monotonic() + timeout
        while len(self.commits()) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"writer {self.label} made no progress ({self.errors} errors)")
            time.sleep(0.05)

    def longest_gap(self, start: float, end: float = math.inf) -> float:
        """The longest time between two commits that returned within [start, end]; NaN with fewer than two."""
        times = [t for t in self.commits() if start <= t <= end]
        return max((b - a for a, b in itertools.pairwise(times)), default=float("nan"))


class Workload:
    """One multi-host read-write writer plus one writer pinned to each node."""

    def __init__(self, rw_conninfo: str, pinned: dict[str, str]) -> None:
        self.writers = [Writer("rw", rw_conninfo, 0, reconnect_on_read_only=True)]
        for i, (node, conninfo) in enumerate(sorted(pinned.items()), start=1):
            self.writers.append(Writer(node, conninfo, i * 100_000_000, interval=0.02))

    def start(self) -> None:
        for w in self.writers:
            w.start()

    def stop(self) -> list[Attempt]:
        for w in self.writers:
            w.stop()
        for w in self.writers:
            w.join(timeout=10)
        return sorted((a for w in self.writers for a in w.log), key=lambda a: a.t_send)


def steady_writer(label: str, conninfo: str, interval: float = 0.02) -> Writer:
    """A started writer for outage benchmarks on a fresh table: a commit every `interval`, a reconnect
    (after the same pause) on any error, and no deadline: a commit that hangs is part of the outage."""
    prepare_table(conninfo)
    writer = Writer(label, conninfo, 0, interval=interval, deadline=math.inf, reconnect_on_read_only=True,
                    connect_pause=interval, read_only_pause=interval)
    writer.start()
    return writer


def prepare_table(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(f"TRUNCATE {TABLE}")


def final_ids(conninfo: str) -> set[int]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return {int(r[0]) for r in conn.execute(f"SELECT id FROM {TABLE}").fetchall()}
