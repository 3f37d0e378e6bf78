"""The embedded one-machine store: several agent processes share one SQLite file.

Why this is safe on one machine:
- expiry is measured with ``time.monotonic()``; on Linux that is CLOCK_MONOTONIC, which is
  system-wide, so every process on the machine agrees on it and wall-clock jumps do not matter;
- CLOCK_MONOTONIC restarts at boot, so the kernel's boot id is stored in the file and a
  different boot voids every lease, member record and switchover request (the term counter,
  the leader history and the rest of the cluster state survive);
- a switchover request expires like a member record (``expires`` on the same clock); the leader
  history has no expiry and is written in the same transaction that checks the writer's lease;
- every compare-and-swap runs in a ``BEGIN IMMEDIATE`` transaction (one writer at a time),
  the journal is WAL so readers never wait for writers, and ``busy_timeout`` is the
  constructor's timeout so a stuck lock holder turns into :class:`DCSError`, not a hang.
A slow disk (fsync) is not bounded by the timeout; SQLite offers no way to interrupt it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pgkeel.dcs.base import (
    DCS,
    ClusterView,
    DCSError,
    Leader,
    Member,
    Versioned,
    check_name,
    check_timeout,
    check_ttl,
    check_value_key,
)

VALUE_PREFIX = "value:"  # state rows of the operator-level values (DCS.set_value)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leader (
    scope TEXT PRIMARY KEY, holder TEXT, term INTEGER NOT NULL, ttl REAL NOT NULL, expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    scope TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS state (
    scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS switchover (scope TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL);
"""

_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot's identity: CLOCK_MONOTONIC values are only comparable within one boot."""
    try:
        return _BOOT_ID_PATH.read_text().strip()
    except OSError:
        return "unknown"


class SQLiteDCS(DCS):
    """DCS on one SQLite file; thread-safe, and safe for many processes on one machine."""

    def __init__(self, path: str | Path, scope: str, timeout: float = 1.0) -> None:
        self._scope = check_name("scope", scope)
        self._timeout = check_timeout(timeout)
        self._path = Path(path)
        if not self._path.is_absolute():
            raise ValueError(f"sqlite path must be absolute: {path}")
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise DCSError(f"cannot open {self._path}: {exc}") from exc
        # Several agents may open a fresh file at once; switching it to WAL takes an exclusive
        # lock that SQLite reports as "locked" without waiting, so the first setup retries.
        deadline = time.monotonic() + max(5.0, self._timeout)
        while True:
            try:
                self._setup()
                break
            except DCSError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    self._conn.close()
                    raise
                time.sleep(0.05)

    # -- plumbing -------------------------------------------------------------------------

    def _setup(self) -> None:
        with self._guard():
            self._conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DCSError(f"{self._path}: cannot switch to WAL (journal_mode={mode})")
            self._conn.execute("PRAGMA synchronous = FULL")
        with self._write() as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            # Files written before switchover requests expired kept them in `state`, with no expiry.
            cur.execute("DELETE FROM state WHERE key = 'switchover'")
            row = cur.execute("SELECT value FROM meta WHERE key = 'boot_id'").fetchone()
            current = boot_id()
            if row is None or row[0] != current:
                # A new boot: monotonic expiries written before it mean nothing now.
                cur.execute("UPDATE leader SET holder = NULL, expires = 0")
                cur.execute("DELETE FROM members")
                cur.execute("DELETE FROM switchover")
                cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', ?)", (current,))

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite failures (locked past the timeout, corrupt file, ...) into DCSError."""
        try:
            yield
        except sqlite3.Error as exc:
            raise DCSError(f"sqlite store {self._path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One BEGIN IMMEDIATE transaction: the writer lock is held from the first read."""
        with self._lock, self._guard():
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        """One read transaction, so a view is a consistent snapshot."""
        with self._lock, self._guard():
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            finally:
                self._conn.rollback()

    def _live_leader(self, cur: sqlite3.Cursor, now: float) -> tuple[str | None, int]:
        """(holder of a live lease or None, last term) for this scope."""
        row = cur.execute("SELECT holder, term, expires FROM leader WHERE scope = ?", (self._scope,)).fetchone()
        if row is None:
            return None, 0
        holder, term, expires = row
        return (holder if holder is not None and expires > now else None), int(term)

    def _put_leader(self, cur: sqlite3.Cursor, holder: str, term: int, ttl: float, now: float) -> None:
        cur.execute(
            "INSERT INTO leader (scope, holder, term, ttl, expires) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET holder = excluded.holder, term = excluded.term, "
            "ttl = excluded.ttl, expires = excluded.expires",
            (self._scope, holder, term, ttl, now + ttl),
        )

    def _get_state(self, cur: sqlite3.Cursor, key: str) -> tuple[str | None, int]:
        row = cur.execute("SELECT value, version FROM state WHERE scope = ? AND key = ?", (self._scope, key)).fetchone()
        return (None, 0) if row is None else (row[0], int(row[1]))

    def _put_state(self, cur: sqlite3.Cursor, key: str, value: str, version: int) -> None:
        cur.execute(
            "INSERT INTO state (scope, key, value, version) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, version = excluded.version",
            (self._scope, key, value, version),
        )

    def _del_state(self, cur: sqlite3.Cursor, key: str) -> None:
        cur.execute("DELETE FROM state WHERE scope = ? AND key = ?", (self._scope, key))

    # -- the interface --------------------------------------------------------------------

    def view(self) -> ClusterView:
        with self._read() as cur:
            now = time.monotonic()
            lrow = cur.execute(
                "SELECT holder, term, ttl FROM leader WHERE scope = ? AND holder IS NOT NULL AND expires > ?",
                (self._scope, now),
            ).fetchone()
            mrows = cur.execute(
                "SELECT name, data FROM members WHERE scope = ? AND expires > ? ORDER BY name",
                (self._scope, now),
            ).fetchall()
            srows = cur.execute("SELECT key, value, version FROM state WHERE scope = ?", (self._scope,)).fetchall()
            swrow = cur.execute(
                "SELECT value FROM switchover WHERE scope = ? AND expires > ?", (self._scope, now)
            ).fetchone()
        state = {str(key): (str(value), int(version)) for key, value, version in srows}
        try:
            members = {str(name): Member(str(name), _object(data)) for name, data in mrows}
            sync = state.get("sync")
            history = state.get("history")
            initialize = state.get("initialize")
            return ClusterView(
                leader=Leader(str(lrow[0]), int(lrow[1]), float(lrow[2])) if lrow else None,
                members=members,
                initialize=initialize[0] if initialize else None,
                sync=_object(sync[0]) if sync else None,
                sync_version=sync[1] if sync else 0,
                switchover=_object(swrow[0]) if swrow else None,
                history=_object(history[0]) if history else None,
                values={
                    key[len(VALUE_PREFIX) :]: Versioned(_object(value), version)
                    for key, (value, version) in state.items()
                    if key.startswith(VALUE_PREFIX)
                },
            )
        except ValueError as exc:
            raise DCSError(f"sqlite store {self._path}: garbage record: {exc}") from exc

    def acquire_leader(self, name: str, ttl: float) -> bool:
        check_name("name", name)
        ttl = check_ttl(ttl)
        with self._write() as cur:
            now = time.monotonic()
            holder, term = self._live_leader(cur, now)
            if holder is not None:
                return False
            self._put_leader(cur, name, term + 1, ttl, now)
            return True

    def renew_leader(self, name: str, ttl: float) -> bool:
        check_name("name", name)
        ttl = check_ttl(ttl)
        with self._write() as cur:
            now = time.monotonic()
            holder, term = self._live_leader(cur, now)
            if holder != name:
                return False
            self._put_leader(cur, name, term, ttl, now)
            return True

    def release_leader(self, name: str) -> bool:
        check_name("name", name)
        with self._write() as cur:
            holder, _ = self._live_leader(cur, time.monotonic())
            if holder != name:
                return False
            cur.execute("UPDATE leader SET holder = NULL, expires = 0 WHERE scope = ?", (self._scope,))
            return True

    def take_over_leader(self, from_name: str, to_name: str, ttl: float) -> bool:
        check_name("from_name", from_name)
        check_name("to_name", to_name)
        ttl = check_ttl(ttl)
        with self._write() as cur:
            now = time.monotonic()
            holder, term = self._live_leader(cur, now)
            if holder != from_name:
                return False
            self._put_leader(cur, to_name, term + 1, ttl, now)
            return True

    def initialize(self, value: str) -> bool:
        with self._write() as cur:
            if self._get_state(cur, "initialize")[0] is not None:
                return False
            self._put_state(cur, "initialize", value, 1)
            return True

    def set_initialize(self, expected: str, value: str) -> bool:
        with self._write() as cur:
            current, version = self._get_state(cur, "initialize")
            if current is None or current != expected:
                return False
            self._put_state(cur, "initialize", value, version + 1)
            return True

    def clear_initialize(self, expected: str) -> bool:
        with self._write() as cur:
            current, _ = self._get_state(cur, "initialize")
            if current is None or current != expected:
                return False
            self._del_state(cur, "initialize")
            return True

    def set_member(self, name: str, data: dict[str, Any], ttl: float) -> None:
        check_name("name", name)
        ttl = check_ttl(ttl)
        encoded = json.dumps(data, sort_keys=True)
        with self._write() as cur:
            now = time.monotonic()
            # Housekeeping: expired records of this scope are dead weight.
            cur.execute("DELETE FROM members WHERE scope = ? AND expires <= ?", (self._scope, now))
            cur.execute(
                "INSERT INTO members (scope, name, data, expires) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope, name) DO UPDATE SET data = excluded.data, expires = excluded.expires",
                (self._scope, name, encoded, now + ttl),
            )

    def delete_member(self, name: str) -> None:
        check_name("name", name)
        with self._write() as cur:
            cur.execute("DELETE FROM members WHERE scope = ? AND name = ?", (self._scope, name))

    def set_sync(self, value: dict[str, Any], expected_version: int) -> bool:
        return self._versioned_cas("sync", value, expected_version)

    def set_value(self, key: str, value: dict[str, Any], expected_version: int) -> bool:
        return self._versioned_cas(VALUE_PREFIX + check_value_key(key), value, expected_version)

    def _versioned_cas(self, state_key: str, value: dict[str, Any], expected_version: int) -> bool:
        """Write `value` under `state_key` as the next version if the stored one is `expected_version` (0: none)."""
        encoded = json.dumps(value, sort_keys=True)
        with self._write() as cur:
            _, version = self._get_state(cur, state_key)
            if version != expected_version:
                return False
            self._put_state(cur, state_key, encoded, version + 1)
            return True

    def set_switchover(self, value: dict[str, Any], ttl: float = 60.0) -> None:
        ttl = check_ttl(ttl)
        encoded = json.dumps(value, sort_keys=True)
        with self._write() as cur:
            now = time.monotonic()
            cur.execute(
                "INSERT INTO switchover (scope, value, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                (self._scope, encoded, now + ttl),
            )

    def clear_switchover(self) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM switchover WHERE scope = ?", (self._scope,))

    def set_history(self, name: str, value: dict[str, Any]) -> bool:
        check_name("name", name)
        encoded = json.dumps(value, sort_keys=True)
        with self._write() as cur:
            holder, _ = self._live_leader(cur, time.monotonic())
            if holder != name:
                return False
            _, version = self._get_state(cur, "history")
            self._put_state(cur, "history", encoded, version + 1)
            return True

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _object(raw: Any) -> dict[str, Any]:
    """A stored JSON object; ValueError for anything else (the caller reports a garbage record)."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {str(raw)[:100]!r}")
    return value
