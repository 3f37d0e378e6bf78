"""Rejoining paths that touch the data directory: pg_rewind, and the facts the agent needs before
choosing between rewind, retry and re-clone (source size, lost WAL).

Kept out of server.py so each file has one job; `Instance` exposes these as methods.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

import psycopg

from pgkeel.instance import logs, rewind
from pgkeel.instance.files import set_standby_signal
from pgkeel.instance.process import CommandError, run
from pgkeel.instance.rewind import RewindOutcome, RewindResult, rewind_marker
from pgkeel.instance.space import SOURCE_SIZE_SQL

if TYPE_CHECKING:
    from pgkeel.instance.server import Instance

REWIND_TIMEOUT = 3600.0


def tool_major(inst: Instance, tool: str = "pg_rewind") -> int:
    return rewind.tool_major(run([inst._tool(tool), "--version"], run_as=inst.run_as, timeout=10))


def source_conninfo(inst: Instance, host: str, port: int, suffix: str) -> str:
    c = inst.config
    return (
        f"host={host} port={port} user={c.replication_user} dbname=postgres "
        f"application_name={c.name}-{suffix} {c.ssl_options}"
    )


def query_source(inst: Instance, host: str, port: int, purpose: str, sql: str) -> tuple[Any, ...] | None:
    """One row from the leader (as the replication role, through the passfile); psycopg.Error on failure."""
    conninfo = source_conninfo(inst, host, port, purpose) + f" passfile={inst.config.passfile} connect_timeout=3"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(sql).fetchone()


_SOURCE_TIMELINES_SQL = """
SELECT (SELECT timeline_id FROM pg_control_checkpoint()),
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END
"""


def source_not_checkpointed(inst: Instance, host: str, port: int) -> str | None:
    """Why pg_rewind cannot trust the source yet, or None.

    pg_rewind takes the source's timeline from its control file, which a promotion updates only at
    the next checkpoint: run before it, it compares the old primary with the source's *previous*
    timeline, says "no rewind required", and the old primary then never streams (Patroni waits for
    the same checkpoint). The new primary checkpoints right after promoting; this waits for it. A
    source that cannot be asked is left to pg_rewind, which classifies the connection error itself."""
    try:
        row = query_source(inst, host, port, "rewind-check", _SOURCE_TIMELINES_SQL)
    except psycopg.Error:
        return None
    if row is None or row[0] is None or row[1] is None or int(row[0]) >= int(row[1]):
        return None
    return (
        f"the source {host}:{port} has not checkpointed since its promotion (timeline {row[0]} in its control "
        f"file, {row[1]} now): pg_rewind would wrongly find no rewind required; retrying"
    )


def try_rewind(inst: Instance, host: str, port: int, major: int | None = None) -> RewindResult:
    """Run pg_rewind against host:port (postgres must be stopped) and classify the result.

    Never raises for pg_rewind's own failures. A marker file brackets the run: if an earlier run
    died after it began writing, the directory is reported INTERRUPTED without running again.
    `major` overrides `pg_rewind --version` (tests exercise the 13/14 path with newer binaries).
    """
    c = inst.config
    marker = rewind_marker(c.datadir)
    if marker.exists():
        return RewindResult(
            RewindOutcome.INTERRUPTED,
            f"an earlier pg_rewind did not finish ({marker} is still there)",
            marker.read_text(encoding="utf-8", errors="replace"),
            None,
        )
    waiting = source_not_checkpointed(inst, host, port)
    if waiting is not None:
        return RewindResult(RewindOutcome.UNREACHABLE, waiting, "", None)  # retryable; nothing was touched
    major = tool_major(inst) if major is None else major
    # pg_rewind may run crash recovery in single-user mode first, which refuses standby mode.
    set_standby_signal(c.datadir, False)
    if major < 15 and not inst.control_data().clean_shutdown:
        # pg_rewind 13/14 cannot be told where our config file is (see rewind.rewind_argv).
        argv = rewind.single_user_recovery_argv(inst._tool("postgres"), c.datadir, c.config_file)
        try:
            run(argv, run_as=inst.run_as, cwd=c.datadir, stdin="", timeout=REWIND_TIMEOUT)
        except CommandError as exc:
            return RewindResult(RewindOutcome.FAILED, "single-user crash recovery failed", exc.output, exc.returncode)
    argv = rewind.rewind_argv(
        inst._tool("pg_rewind"), c.datadir, source_conninfo(inst, host, port, "rewind"), c.config_file, major
    )
    marker.write_text(f"pg_rewind from {host}:{port}\n", encoding="utf-8")
    try:
        output = run(argv, run_as=inst.run_as, env=inst._env(), timeout=REWIND_TIMEOUT)
        returncode = 0
    except CommandError as exc:
        output, returncode = exc.output, exc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output or ""
        return RewindResult(RewindOutcome.INTERRUPTED, f"pg_rewind timed out after {REWIND_TIMEOUT:g}s", out, None)
    result = rewind.classify(output, returncode)
    if result.outcome is not RewindOutcome.INTERRUPTED:
        marker.unlink(missing_ok=True)  # it exited before writing anything, or it finished
    return result


def source_bytes(inst: Instance, host: str, port: int) -> tuple[int, int]:
    """(bytes of the source's databases, databases not counted) over the replication role's login."""
    row = query_source(inst, host, port, "size", SOURCE_SIZE_SQL)
    assert row is not None
    return int(row[0]), int(row[1])


def wal_source_lost(inst: Instance) -> bool:
    """True when this standby's walreceiver was told, since postgres last started (or reloaded),
    that the leader no longer has the WAL it needs, and has not streamed since.

    Such a node can never catch up by retrying or by pg_rewind (which says "no rewind required"
    on the same timeline): only a re-clone helps (review F13). Read from the log because the
    walreceiver exits after the error and pg_stat_wal_receiver is then empty.
    """
    if not inst.is_running():
        return False
    try:
        rows = inst.query("SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)")
    except psycopg.Error:
        rows = []  # not answering yet (still replaying local WAL): the log still tells
    if rows and not rows[0][0]:
        return False  # a primary streams from nobody
    return logs.wal_gone_in_log(logs.tail_lines(inst.config.log_file)) is not None
