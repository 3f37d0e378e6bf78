"""The archive backlog on a primary: WAL waiting for the archive, measured against spec.backup.archive's bound.

PostgreSQL keeps every segment not yet archived, whatever max_wal_size and max_slot_wal_keep_size say,
so a repository that stays unreachable would fill the volume. The bound (maxBacklog) is part of the WAL
budget; past it, one explicit choice (onBacklogFull):
- stopArchiving: pgBackRest's archive-push-queue-max drops the segments past the bound (enforced in the
  archiver, so it holds while the agent is down); this module notices and reports a gap in point-in-time
  recovery from that moment until a full backup is taken after it.
- stopWrites: the agent turns the primary read-only (ALTER SYSTEM default_transaction_read_only) until
  the backlog drains to half the bound; the archive stays complete.

`judge` is the whole decision and is pure; `ArchiveWatch` reads postgres, runs `judge` and performs its
one effect. Invariant: the watch never changes a node's role or the lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

import psycopg
from pydantic import BaseModel, Field

from pgkeel.backup.engine import BackupEngine, PgHost
from pgkeel.backup.pgbackrest import PgBackRest
from pgkeel.document.backup import PGBACKREST_CONF
from pgkeel.instance import Instance

log = logging.getLogger("pgkeel.agent")

OnFull = Literal["stopArchiving", "stopWrites"]
# One query: pg_stat_archiver, the .ready files (each one segment), and who set default_transaction_read_only.
SAMPLE_SQL = """
SELECT a.archived_count, a.failed_count, a.last_archived_wal,
       extract(epoch FROM now() - a.last_archived_time)::float8,
       a.last_failed_wal, extract(epoch FROM now() - a.last_failed_time)::float8,
       (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%%.ready'),
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
       (SELECT setting = 'on' AND coalesce(sourcefile, '') LIKE '%%postgresql.auto.conf'
          FROM pg_settings WHERE name = 'default_transaction_read_only')
  FROM pg_stat_archiver a
"""


class Action(StrEnum):
    NONE = "none"
    STOP_WRITES = "stop-writes"
    RESUME_WRITES = "resume-writes"


@dataclass(frozen=True)
class ArchivePolicy:
    """spec.backup.archive as the agent holds it (AgentConfig.archive_*)."""

    max_backlog: int
    on_full: OnFull


@dataclass(frozen=True)
class ArchiverSample:
    """One read of a primary's archiver; ages in seconds (None: never)."""

    ready_segments: int
    segment_bytes: int
    archived_count: int = 0
    failed_count: int = 0
    last_archived_wal: str | None = None
    last_archived_age: float | None = None
    last_failed_wal: str | None = None
    last_failed_age: float | None = None
    read_only_by_agent: bool = False  # default_transaction_read_only = on from postgresql.auto.conf

    @property
    def backlog_bytes(self) -> int:
        return self.ready_segments * self.segment_bytes

    @property
    def failing(self) -> bool:
        """The last attempt failed (a drop by pgBackRest counts as archived, so it does not clear this)."""
        if self.last_failed_age is None:
            return False
        return self.last_archived_age is None or self.last_failed_age < self.last_archived_age


@dataclass(frozen=True)
class WatchState:
    """What the watch remembers between loops (epoch seconds)."""

    gap_since: float | None = None  # stopArchiving: the backlog reached the bound, so pgBackRest dropped WAL
    gap_wal: str | None = None  # the last segment archived before that, for the operator


class ArchiveStatus(BaseModel):
    """The archive as /status shows it (the primary only; replicas do not archive)."""

    backlog_bytes: int = Field(description="WAL segments waiting for the archive (pg_wal/archive_status/*.ready)")
    max_backlog_bytes: int = Field(description="spec.backup.archive.maxBacklog")
    on_backlog_full: OnFull
    archived_count: int = Field(description="pg_stat_archiver.archived_count (includes WAL pgBackRest dropped)")
    failed_count: int = Field(description="pg_stat_archiver.failed_count since the statistics were reset")
    last_archived_wal: str | None = None
    last_archived_age_s: float | None = Field(default=None, description="seconds since a segment was archived")
    last_failed_wal: str | None = None
    last_failed_age_s: float | None = None
    failing: bool = Field(default=False, description="the last archive attempt failed")
    gap_since: float | None = Field(
        default=None, description="stopArchiving: epoch from which point-in-time recovery is broken (WAL dropped) "
        "until a full backup taken after it; null: no gap seen by this agent"
    )
    writes_stopped: bool = Field(default=False, description="stopWrites: the primary is read-only for the archive")
    line: str = Field(default="", description="one line for `pgkeel status`")


@dataclass(frozen=True)
class Verdict:
    state: WatchState
    action: Action
    status: ArchiveStatus


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s ago"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(
    sample: ArchiverSample, policy: ArchivePolicy, state: WatchState, now: float,
    full_backup_since: float | None = None,
) -> Verdict:
    """The decision for one sample. `full_backup_since`: start (epoch) of the newest full backup, when known.

    Full = one more segment would pass the bound (pgBackRest drops at that point). stopArchiving latches a
    gap from the first full sample until a full backup started after it and the archive is healthy again;
    stopWrites stops writes when full and resumes them at half the bound (hysteresis: no flapping)."""
    backlog, bound = sample.backlog_bytes, policy.max_backlog
    full = backlog + sample.segment_bytes > bound
    action = Action.NONE
    writes_stopped = sample.read_only_by_agent
    if policy.on_full == "stopWrites":
        if full and not writes_stopped:
            action, writes_stopped = Action.STOP_WRITES, True
        elif writes_stopped and backlog <= bound // 2:
            action, writes_stopped = Action.RESUME_WRITES, False
    elif sample.read_only_by_agent:  # the document changed to stopArchiving while writes were stopped
        action, writes_stopped = Action.RESUME_WRITES, False
    if policy.on_full == "stopArchiving" and full and state.gap_since is None:
        state = replace(state, gap_since=now, gap_wal=sample.last_archived_wal)
    healed = (state.gap_since is not None and not full and not sample.failing
              and full_backup_since is not None and full_backup_since > state.gap_since)
    if healed:
        state = WatchState()
    status = ArchiveStatus(
        backlog_bytes=backlog,
        max_backlog_bytes=bound,
        on_backlog_full=policy.on_full,
        archived_count=sample.archived_count,
        failed_count=sample.failed_count,
        last_archived_wal=sample.last_archived_wal,
        last_archived_age_s=sample.last_archived_age,
        last_failed_wal=sample.last_failed_wal,
        last_failed_age_s=sample.last_failed_age,
        failing=sample.failing,
        gap_since=state.gap_since,
        writes_stopped=writes_stopped,
        line=status_line(sample, policy, state, writes_stopped),
    )
    return Verdict(state, action, status)


def status_line(sample: ArchiverSample, policy: ArchivePolicy, state: WatchState, writes_stopped: bool) -> str:
    """What an operator reads first: the worst thing that is true."""
    backlog, bound = sample.backlog_bytes, policy.max_backlog
    of = f"backlog {_mib(backlog)} of {_mib(bound)}"
    if writes_stopped:
        return (f"WRITES STOPPED: archive {of} (spec.backup.archive.onBacklogFull: stopWrites); writes resume "
                f"below {_mib(bound // 2)}; last archived {_age(sample.last_archived_age)}")
    if state.gap_since is not None:
        after = f" (after {state.gap_wal})" if state.gap_wal else ""
        return (f"ARCHIVING STOPPED: {of} reached, pgBackRest drops WAL; point-in-time recovery broken since "
                f"{_when(state.gap_since)}{after} until a new full backup (pgkeel backup now --type full)")
    if sample.failing:
        return (f"archiving FAILING: {of}, last archived {_age(sample.last_archived_age)}, "
                f"{sample.last_failed_wal} failed {_age(sample.last_failed_age)} (see the postgres log)")
    return f"archiving ok: {of}, last archived {_age(sample.last_archived_age)}"


def read_sample(instance: Instance) -> ArchiverSample:
    (row,) = instance.query(SAMPLE_SQL)
    return ArchiverSample(
        archived_count=int(row[0]), failed_count=int(row[1]), last_archived_wal=row[2], last_archived_age=row[3],
        last_failed_wal=row[4], last_failed_age=row[5], ready_segments=int(row[6]), segment_bytes=int(row[7]),
        read_only_by_agent=bool(row[8]),
    )


def set_read_only(instance: Instance, on: bool) -> None:
    """ALTER SYSTEM + reload: every session without its own SET follows at its next transaction."""
    if on:
        instance.query("ALTER SYSTEM SET default_transaction_read_only = on")
    else:
        instance.query("ALTER SYSTEM RESET default_transaction_read_only")
    instance.query("SELECT pg_reload_conf()")


class ArchiveWatch:
    """Samples the primary every `every` seconds, runs `judge`, performs its action; `status` for /status."""

    def __init__(
        self, instance: Instance, policy: ArchivePolicy | None, newest_full_backup: Callable[[], float | None],
        every: float = 2.0, backup_every: float = 60.0, ensure_stanza: Callable[[], object] | None = None,
        gap_memory: GapMemory | None = None,
    ) -> None:
        self.instance = instance
        self.policy = policy  # None: the cluster does not archive
        self.newest_full_backup = newest_full_backup  # the repository's newest full backup start (epoch), or None
        # Run once as primary (retried every backup_every): archive-push fails until the stanza exists.
        self.ensure_stanza = ensure_stanza
        self._stanza_tried: float | None = None  # monotonic; None: not yet, or the stanza is known to exist
        self._stanza_ok = ensure_stanza is None
        self.every = every
        self.backup_every = backup_every  # pgbackrest info is asked only while a gap is open, at most this often
        self.state = WatchState()
        self.status: ArchiveStatus | None = None  # the last verdict's, while this node is a running primary
        self._sampled: float | None = None  # monotonic
        self._backup_checked: float | None = None  # monotonic
        self._full_backup_since: float | None = None
        # Where an open gap is kept beyond this process (the store, shared by every node): a restarted agent,
        # or the next primary after a failover, reads it back before judging its first sample.
        self.gap_memory = gap_memory
        self._gap_loaded = gap_memory is None
        self._job: threading.Thread | None = None  # the pgBackRest call under way (stanza, backups)

    def _recall_gap(self) -> None:
        if self._gap_loaded or self.gap_memory is None:
            return
        try:
            stored = self.gap_memory.load()
        except Exception as exc:  # the store may be unreachable: judge without it, try again next sample
            log.info("archive gap: cannot read the stored gap yet: %s", exc)
            return
        self._gap_loaded = True
        if stored is not None and self.state.gap_since is None:
            self.state = WatchState(gap_since=stored[0], gap_wal=stored[1])
            log.error("archive gap recorded in the store since %s: point-in-time recovery stays broken until a "
                      "new full backup", _when(stored[0]))

    def _remember_gap(self, state: WatchState) -> None:
        if self.gap_memory is None:
            return
        try:
            self.gap_memory.save((state.gap_since, state.gap_wal) if state.gap_since is not None else None)
        except Exception as exc:  # kept in memory meanwhile; written again when it changes next
            log.warning("archive gap: cannot record it in the store: %s", exc)

    def run(self) -> None:
        if self.policy is None:
            return
        mono = time.monotonic()
        if self._sampled is not None and mono - self._sampled < self.every:
            return
        self._sampled = mono
        try:
            (row,) = self.instance.query("SELECT pg_is_in_recovery()")
            if row[0]:
                self.status = None  # replicas do not archive (archive_mode = on)
                self._gap_loaded = self.gap_memory is None  # read the store again on becoming primary
                return
            sample = read_sample(self.instance)
        except (psycopg.Error, OSError):
            self.status = None
            return
        self._prepare_stanza(mono)
        self._recall_gap()
        self._refresh_backups(mono)
        verdict = judge(sample, self.policy, self.state, time.time(), self._full_backup_since)
        self._perform(verdict)

    def _in_background(self, name: str, work: Callable[[], None]) -> None:
        """Run a pgBackRest call off the agent loop: an unreachable repository (S3 times out after minutes)
        must never hold the loop that renews the lease. One call at a time; its result is used next sample."""
        if self._job is not None and self._job.is_alive():
            return
        self._job = threading.Thread(target=work, name=f"pgkeel-archive-{name}", daemon=True)
        self._job.start()

    def _prepare_stanza(self, mono: float) -> None:
        if self._stanza_ok or self.ensure_stanza is None:
            return
        if self._stanza_tried is not None and mono - self._stanza_tried < self.backup_every:
            return
        self._stanza_tried = mono
        ensure = self.ensure_stanza

        def create() -> None:
            try:
                if ensure():
                    log.info("created the pgBackRest stanza: this primary's WAL can now be archived")
                self._stanza_ok = True
            except Exception as exc:  # the repository may be unreachable: archiving fails loudly meanwhile
                log.error("cannot create the pgBackRest stanza (archiving fails until it exists): %s", exc)

        self._in_background("stanza", create)

    def _refresh_backups(self, mono: float) -> None:
        if self.state.gap_since is None:
            return
        if self._backup_checked is not None and mono - self._backup_checked < self.backup_every:
            return
        self._backup_checked = mono

        def look() -> None:
            try:
                self._full_backup_since = self.newest_full_backup()
            except Exception as exc:  # an unreachable repository is the likely reason for the gap: keep it open
                log.info("archive gap: cannot list backups yet: %s", exc)

        self._in_background("backups", look)

    def _perform(self, verdict: Verdict) -> None:
        if verdict.state.gap_since is not None and self.state.gap_since is None:
            log.error("%s", verdict.status.line)
            self._remember_gap(verdict.state)
        elif verdict.state.gap_since is None and self.state.gap_since is not None:
            log.info("archive gap closed: a full backup was taken after it and archiving works")
            self._remember_gap(verdict.state)
        self.state = verdict.state
        status = verdict.status
        if verdict.action is not Action.NONE:
            on = verdict.action is Action.STOP_WRITES
            try:
                set_read_only(self.instance, on)
                log.warning("%s", status.line if on else "archive backlog drained: writes resumed")
            except psycopg.Error as exc:
                log.error("cannot %s: %s", verdict.action, exc)
                status = status.model_copy(update={"writes_stopped": not on})
        self.status = status


def full_backup_start(engine: BackupEngine) -> float | None:
    """Start (epoch) of the newest full backup in the repository, None without one."""
    return max((b.started.timestamp() for b in engine.info().backups if b.type == "full"), default=None)


class GapMemory(Protocol):
    """Keeps an open archive gap (since epoch, last segment before it) beyond one agent; None: no gap."""

    def load(self) -> tuple[float, str | None] | None: ...

    def save(self, gap: tuple[float, str | None] | None) -> None: ...


def watch_for(
    instance: Instance, config_dir: Path, stanza: str, max_backlog: int | None, on_full: OnFull,
    gap_memory: GapMemory | None = None,
) -> ArchiveWatch:
    """The agent's watch: the cluster's pgbackrest.conf beside postgresql.conf; no policy without an archive."""
    engine = PgBackRest(config_dir / PGBACKREST_CONF, stanza)
    policy = ArchivePolicy(max_backlog, on_full) if max_backlog is not None else None
    c = instance.config
    primary = PgHost(c.datadir, c.port, c.socket_dir, c.superuser)
    return ArchiveWatch(instance, policy, lambda: full_backup_start(engine),
                        ensure_stanza=lambda: engine.ensure_stanza(primary), gap_memory=gap_memory)
