"""The canary: one small row written on the primary every minute, so a restored copy shows how recent it is.

A quiet database replays no transactions, so "the newest row" of user tables says nothing about where
recovery stopped. The agent writes a canary row on the primary (every minute, in the `postgres`
database); it reaches the archive with the WAL like any write, and a restore drill reads the newest
row back from its copy: a drill that recovers to the end of the archive has a canary at most about
`archive_timeout` + one minute old. Rows older than a week are deleted on each write, so the table
stays a few thousand rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Query = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]  # Instance.query, or query_of(conn)
Database = psycopg.Connection[Any] | Query

SCHEMA_SQL = "CREATE SCHEMA IF NOT EXISTS pgkeel"
TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS pgkeel.canary ("
    "id bigserial PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now(), member text NOT NULL)"
)
INSERT_SQL = "INSERT INTO pgkeel.canary (member) VALUES (%s) RETURNING written_at"
PRUNE_SQL = "DELETE FROM pgkeel.canary WHERE written_at < now() - interval '7 days'"
READ_SQL = (
    "SELECT count(*), max(written_at), (SELECT member FROM pgkeel.canary ORDER BY written_at DESC, id DESC LIMIT 1) "
    "FROM pgkeel.canary"
)


@dataclass(frozen=True)
class Canary:
    """What the canary table holds: how many rows, the newest one's time and writer (None when empty)."""

    rows: int
    newest: datetime | None
    member: str | None


def query_of(target: Database) -> Query:
    """A query function over a psycopg connection (autocommit or not: each call commits), or the one given."""
    if not isinstance(target, psycopg.Connection):
        return target
    conn = target

    def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    return query


def write_canary(target: Database, member: str) -> datetime:
    """Create the table if needed, insert one row for `member`, drop rows past a week; the row's written_at.
    Raises psycopg.Error where the server refuses writes (a replica, or stopWrites)."""
    query = query_of(target)
    query(SCHEMA_SQL, ())
    query(TABLE_SQL, ())
    (row,) = query(INSERT_SQL, (member,))
    query(PRUNE_SQL, ())
    return row[0]  # type: ignore[no-any-return]  # timestamptz: psycopg returns datetime


def read_canary(target: Database) -> Canary | None:
    """The canary in this database, or None when no pgkeel.canary table exists (nothing wrote one)."""
    query = query_of(target)
    if query("SELECT to_regclass('pgkeel.canary') IS NOT NULL", ())[0][0] is not True:
        return None
    rows, newest, member = query(READ_SQL, ())[0]
    return Canary(int(rows), newest, member)
