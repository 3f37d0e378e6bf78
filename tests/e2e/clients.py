"""Test clients: a writer that logs every acknowledged commit, and process-killing helpers."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgkeel.lab.procs import signal_tree
from pgkeel.local import LocalCluster

SYNC_CANCEL_WARNING = "might not have been replicated"


@dataclass
class Writer:
    """Inserts unique ids through the multi-host read-write DSN; only clean commits count as acknowledged."""

    dsn: str
    table: str = "acked"
    acked: list[tuple[int, float]] = field(default_factory=list)
    indeterminate: list[int] = field(default_factory=list)
    attempted: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Writer:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id bigint PRIMARY KEY)")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        next_id = 1
        conn: psycopg.Connection | None = None
        warnings: list[str] = []
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True)
                    conn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
                warnings.clear()
                self.attempted.add(next_id)
                conn.execute(f"INSERT INTO {self.table} (id) VALUES (%s)", (next_id,))
                if any(SYNC_CANCEL_WARNING in w for w in warnings):
                    self.indeterminate.append(next_id)
                else:
                    self.acked.append((next_id, time.monotonic()))
                next_id += 1
                time.sleep(0.005)
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
                next_id += 1  # the id's fate is unknown: never reuse it
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def acked_ids(self) -> set[int]:
        return {i for i, _ in self.acked}

    def first_ack_after(self, t: float) -> float | None:
        return next((at for _, at in self.acked if at > t), None)

    def wait_acks(self, count: int = 10, timeout: float = 30.0) -> None:
        start = len(self.acked)
        deadline = time.monotonic() + timeout
        while len(self.acked) < start + count:
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.02)


def leader_member(cluster: LocalCluster) -> dict:
    status = cluster.status()
    return next(m for m in status["members"] if m["name"] == status["leader"])


def kill_postgres(pid: int) -> None:
    """SIGKILL the postmaster's whole process tree: a lone postmaster kill leaves backends acking,
    and backends call setsid(), so signalling the process group would miss them."""
    for victim in signal_tree(pid, signal.SIGKILL):
        _wait_gone(victim)


def kill_agent(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} still alive")


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def rows_on(cluster: LocalCluster, name: str, table: str = "acked") -> set[int]:
    with psycopg.connect(cluster.node_dsn(name), autocommit=True) as conn:
        return {r[0] for r in conn.execute(f"SELECT id FROM {table}")}


class WritableSampler:
    """Tries a write on every node directly, every `interval` seconds: which nodes acknowledged one at each instant.

    Each probe is one INSERT on its own node's connection with a short statement timeout, so a node whose
    commits hang or are refused reads as "not writable" at that sample."""

    def __init__(self, cluster: LocalCluster, interval: float = 0.05) -> None:
        self.cluster = cluster
        self.interval = interval
        self.samples: list[tuple[float, frozenset[str]]] = []
        self._names = cluster.cluster().member_names()
        self._conns: dict[str, psycopg.Connection] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _conn(self, name: str) -> psycopg.Connection:
        conn = self._conns.get(name)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.cluster.node_dsn(name), autocommit=True, connect_timeout=1)
            conn.execute("SET statement_timeout = 300")
            self._conns[name] = conn
        return conn

    def start(self) -> WritableSampler:
        with psycopg.connect(self.cluster.dsn(True), autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS writable_probe (node text, at float8)")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = set()
            for name in self._names:
                try:
                    self._conn(name).execute("INSERT INTO writable_probe VALUES (%s, %s)", (name, time.time()))
                    ok.add(name)
                except psycopg.Error:
                    conn = self._conns.pop(name, None)
                    if conn is not None:
                        conn.close()
            self.samples.append((time.monotonic(), frozenset(ok)))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for conn in self._conns.values():
            conn.close()

    def split_brain_samples(self) -> list[tuple[float, frozenset[str]]]:
        return [s for s in self.samples if len(s[1]) > 1]

    def writable_after(self, t: float) -> set[str]:
        return {name for at, names in self.samples if at > t for name in names}
