"""A restore drill: proof that the latest backup restores, replays to the end of the archive and reads back clean.

One drill restores the newest backup into a scratch directory (backup/scratch.py), replays the whole
archive with a postgres of its own, and checks the copy: pg_amcheck, the canary (backup/canary.py) and
the recovered point against the archive's end (drill_result.judge_archive_end). The copy is then
stopped and deleted, green or red.

Why the real cluster cannot notice: the copy's postgres listens on a socket in the scratch directory
only (listen_addresses ''), has no primary_conninfo, no slots and no standbys, and runs with archiving
off twice over (pgBackRest writes archive_mode=off into the copy, and `-c archive_mode=off` wins over any
file): its promotion opens a new timeline that is never pushed, so no history file from a drill can
ever steer the real cluster's next failover or restore. It reads the repository (archive-get) and
writes nothing to it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pgkeel.backup.canary import Canary, read_canary
from pgkeel.backup.drill_result import (
    ARCHIVE_END,
    Check,
    DrillResult,
    first_unreplayed,
    judge_archive_end,
    reached_archive_end,
    replayed_timeline,
    verdict,
)
from pgkeel.backup.engine import BackupEngine, BackupError, RepositoryState, Target
from pgkeel.backup.replay import ReplayError, replay_until_promoted, write_socket_auth
from pgkeel.backup.scratch import ScratchError, prepare_scratch, remove_scratch
from pgkeel.instance import Instance, InstanceConfig
from pgkeel.instance.files import AGENT_SETTINGS, STANDBY_SIGNAL, atomic_write, drop_auto_conf_settings
from pgkeel.instance.logs import tail_lines
from pgkeel.instance.lsn import parse_lsn
from pgkeel.instance.process import CommandError, RunAs, run

REQUIRED = frozenset({"restore", "replay", ARCHIVE_END, "amcheck", "canary"})
NO_BACKUP = "the repository has no backup yet: take one with `pgkeel backup now`"
# A throwaway copy: nothing here needs to survive a crash, and hot_standby off lets recovery run whatever the
# source's max_connections & co. were (those are checked against the primary's only for hot standby).
DRILL_CONF = """\
hba_file = '{scratch}/pg_hba.conf'
ident_file = '{scratch}/pg_ident.conf'
shared_buffers = 32MB
max_connections = 10
fsync = off
synchronous_commit = off
cluster_name = 'pgkeel-drill'
"""
# Command-line settings win over the copy's postgresql.auto.conf (ALTER SYSTEM of the source, pgBackRest's).
DRILL_OPTIONS = {
    "archive_mode": "off", "archive_command": "", "hot_standby": "off", "primary_conninfo": "",
    "primary_slot_name": "", "synchronous_standby_names": "", "shared_preload_libraries": "", "ssl": "off",
    "max_wal_senders": "0", "recovery_target_timeline": "latest",
}
REPLAYED_SQL = """
SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(),
       ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')
"""


@dataclass(frozen=True)
class DrillSetup:
    """Where and with what a drill runs."""

    scratch: Path  # created and deleted by the drill; never inside a data directory
    bindir: Path  # PostgreSQL binaries of the backup's major version
    superuser: str = "postgres"
    timeout: float = 3600.0  # for the copy to start, replay and promote (the restore has pgBackRest's own)
    run_as: RunAs | None = None


def _free_port() -> int:
    """The socket lives in the scratch directory, so any port works; a free one keeps logs unambiguous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drill_instance(setup: DrillSetup, scratch: Path, run_as: RunAs) -> Instance:
    """A postgres for the copy in scratch/data: socket only, its own config, hba and log, all in scratch."""
    conf = scratch / "postgresql.conf"
    atomic_write(conf, DRILL_CONF.format(scratch=scratch), mode=0o644)
    write_socket_auth(scratch / "pg_hba.conf", scratch / "pg_ident.conf", setup.superuser, "drill")
    for path in (conf, scratch / "pg_hba.conf", scratch / "pg_ident.conf"):
        run_as.chown(path)
    config = InstanceConfig(
        name="drill", bindir=setup.bindir, datadir=scratch / "data", config_file=conf, host="", port=_free_port(),
        socket_dir=scratch / "run", log_file=scratch / "postgres.log", superuser=setup.superuser,
        replication_user=setup.superuser, passfile=scratch / "pgpass", extra_options=dict(DRILL_OPTIONS),
    )
    return Instance(config, run_as)


def _log_tail(inst: Instance, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in tail_lines(inst.config.log_file)[-lines:])


def _next_segment_state(engine: BackupEngine, name: str, scratch: Path, run_as: RunAs) -> str:
    """What the repository says of a segment recovery did not get: "missing", "present" or why it failed."""
    probe = scratch / "probe"
    probe.mkdir(mode=0o700, exist_ok=True)
    run_as.chown(probe)
    try:
        return "present" if engine.archive_get(name, probe / name, scratch / "data") else "missing"
    except BackupError as exc:
        return str(exc)


def _amcheck(inst: Instance) -> Check:
    """pg_amcheck of every database (tables and btree indexes); amcheck is installed in the copy only."""
    c = inst.config
    databases = inst.query("SELECT count(*) FROM pg_database WHERE datallowconn")[0][0]
    argv = [str(c.bindir / "pg_amcheck"), "--all", "--install-missing", "-h", str(c.socket_dir), "-p", str(c.port),
            "-U", c.superuser, "--no-password"]
    began = time.monotonic()
    try:
        run(argv, run_as=inst.run_as, timeout=3600)
    except CommandError as exc:
        found = [line.strip() for line in exc.output.splitlines() if line.strip()]
        what = "corruption found" if exc.returncode == 2 else f"pg_amcheck failed (exit {exc.returncode})"
        return Check("amcheck", False, f"{what}: {' | '.join(found[:5]) or '(no output)'}")
    return Check("amcheck", True, f"{databases} databases checked (tables, btree indexes) in "
                                  f"{time.monotonic() - began:.1f}s: no corruption")


@dataclass(frozen=True)
class Recovered:
    """Where the promoted copy's recovery ended."""

    lsn: str | None
    timeline: int | None
    time: datetime | None
    canary_rows: int | None


def _archive_end_check(engine: BackupEngine, inst: Instance, scratch: Path, archive_end: str | None,
                       lsn_text: str | None, timeline: int, segment_size: int) -> Check:
    end_lsn = parse_lsn(lsn_text)
    if end_lsn is None or archive_end is None:
        return Check(ARCHIVE_END, False, f"cannot compare: replayed {lsn_text}, archive end {archive_end}")
    next_state = None
    if not reached_archive_end(end_lsn, timeline, archive_end, segment_size):
        missing = first_unreplayed(end_lsn, timeline, segment_size)
        next_state = _next_segment_state(engine, missing, scratch, inst.run_as)
    return judge_archive_end(end_lsn, str(lsn_text), timeline, archive_end, next_state, segment_size)


def _canary_check(canary: Canary | None) -> Check:
    if canary is None:
        return Check("canary", True, "no pgkeel.canary table in the copy: nothing writes one yet")
    newest = canary.newest.isoformat(timespec="seconds") if canary.newest else "-"
    return Check("canary", canary.rows > 0, f"{canary.rows} rows, newest {newest} by {canary.member}")


def _check_copy(engine: BackupEngine, inst: Instance, state: RepositoryState,
                scratch: Path) -> tuple[tuple[Check, ...], Recovered]:
    """The checks on the promoted copy, and where its recovery ended."""
    lsn_text, replay_time, new_timeline, segment_size = inst.query(REPLAYED_SQL)[0]
    history = inst.query("SELECT pg_read_file(%s)", (f"pg_wal/{new_timeline:08X}.history",))[0][0]
    timeline = replayed_timeline(history) or new_timeline
    end = _archive_end_check(engine, inst, scratch, state.wal_max, lsn_text, timeline, segment_size)
    amcheck = _amcheck(inst)
    canary = read_canary(inst.query)
    # The backup's end is a lower bound: a copy that replayed no commit since still holds everything up to it.
    times = [t for t in (replay_time, canary.newest if canary else None, state.backups[-1].stopped) if t is not None]
    recovered = Recovered(lsn_text, timeline, max(times), canary.rows if canary else None)
    return (end, amcheck, _canary_check(canary)), recovered


def run_drill(engine: BackupEngine, setup: DrillSetup) -> DrillResult:
    """Restore the newest backup into setup.scratch, replay, check, stop and delete; never raises for a red drill."""
    started = datetime.now(UTC)
    run_as = setup.run_as or RunAs.for_current_process()
    checks: list[Check] = []
    error: str | None = None
    label = archive_end = None
    recovered = Recovered(None, None, None, None)
    inst: Instance | None = None
    scratch: Path | None = None
    try:
        state = engine.info()
        archive_end = state.wal_max
        if not state.backups:
            raise BackupError(f"{NO_BACKUP} (stanza {state.stanza}: {state.status})")
        label = state.backups[-1].label
        scratch = prepare_scratch(setup.scratch, run_as)
        datadir = scratch / "data"
        datadir.mkdir(mode=0o700)
        run_as.chown(datadir)
        began = time.monotonic()
        try:
            engine.restore(datadir, Target("latest"), label, archive_off=True)
        except BackupError as exc:
            checks.append(Check("restore", False, f"backup {label} does not restore: {exc}"))
            raise
        checks.append(Check("restore", True, f"backup {label} restored in {time.monotonic() - began:.1f}s"))
        # A backup from a standby brings standby.signal (which would never promote) and the agent's
        # primary_conninfo: the copy recovers from the archive alone.
        (datadir / STANDBY_SIGNAL).unlink(missing_ok=True)
        drop_auto_conf_settings(datadir, AGENT_SETTINGS)
        inst = drill_instance(setup, scratch, run_as)
        began = time.monotonic()
        try:
            replay_until_promoted(inst, setup.timeout)
        except ReplayError as exc:
            checks.append(Check("replay", False, f"{exc}; log: {_log_tail(inst)}"))
            raise
        checks.append(Check("replay", True, f"replayed and promoted in {time.monotonic() - began:.1f}s"))
        copy_checks, recovered = _check_copy(engine, inst, state, scratch)
        checks += copy_checks
    except (BackupError, ReplayError, ScratchError) as exc:
        error = str(exc) if not checks or checks[-1].ok else checks[-1].detail  # the failed step says it best
    except Exception as exc:  # a drill reports what broke, whatever it was; the copy is cleaned up below either way
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if inst is not None:
            with contextlib.suppress(Exception):
                inst.stop("immediate", timeout=30)
        if scratch is not None:
            with contextlib.suppress(Exception):  # a leftover is removed by the next drill (it has the marker)
                remove_scratch(scratch)
    done = tuple(checks)
    return DrillResult(
        ok=verdict(done, error, REQUIRED), started=started, finished=datetime.now(UTC), backup=label,
        archive_end=archive_end, recovered_lsn=recovered.lsn, recovered_timeline=recovered.timeline,
        recovered_time=recovered.time, checks=done, error=error, canary_rows=recovered.canary_rows,
    )
