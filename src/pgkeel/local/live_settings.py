"""What a member's postgres runs with now: pg_settings rows read over TCP as the superuser (its passfile).

Why ask postgres and not the agent: after a reload only the server knows which values it took and
which wait for a restart (pending_restart).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from pgkeel.local.cluster import LocalCluster


@dataclass(frozen=True)
class LiveSetting:
    name: str
    setting: str  # in the parameter's own unit, as pg_settings shows it
    source: str  # default | configuration file | command line | override …
    pending_restart: bool
    boot_val: str | None


def read_settings(local: LocalCluster, member: str, names: list[str]) -> dict[str, LiveSetting]:
    """The rows of `names` on `member` (a name postgres does not know is absent); psycopg.Error if it is down."""
    with psycopg.connect(local.node_dsn(member), autocommit=True, application_name="pgkeel-apply") as conn:
        rows = conn.execute(
            "SELECT name, setting, source, pending_restart, boot_val FROM pg_settings WHERE name = ANY(%s)",
            (names,),
        ).fetchall()
    return {str(r[0]): LiveSetting(str(r[0]), str(r[1]), str(r[2]), bool(r[3]), r[4]) for r in rows}


def read_pending(local: LocalCluster, member: str) -> tuple[str, ...]:
    """Parameters waiting for a restart on `member` now (/status may be a loop behind a reload)."""
    with psycopg.connect(local.node_dsn(member), autocommit=True, application_name="pgkeel-restart") as conn:
        rows = conn.execute(
            "SELECT name FROM pg_settings WHERE pending_restart AND source <> 'command line' ORDER BY name"
        ).fetchall()
    return tuple(str(r[0]) for r in rows)
