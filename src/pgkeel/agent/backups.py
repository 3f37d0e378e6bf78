"""The backup thread: every few seconds the leader's agent reads the store's `backups` record, decides
(pgkeel.backup.plan) and acts; a worker thread runs pgBackRest so the HA loop never waits for a backup.

It runs beside the agent loop, as the roll thread does: what it knows of the cluster (leader, roles,
streaming replicas) is the loop's last observation, and its own state is one store value written by
compare-and-swap. A worker's result is recorded by whoever runs it, leader or not any more.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import psycopg

from pgkeel.backup import BackupError, PgBackRest, PgHost
from pgkeel.backup.canary import write_canary
from pgkeel.backup.drill import DrillSetup, run_drill
from pgkeel.backup.engine import BackupEngine, BackupType
from pgkeel.backup.job import BackupJob
from pgkeel.backup.plan import (
    DRILL,
    Abandon,
    Beat,
    Idle,
    Result,
    Run,
    Seed,
    Situation,
    Start,
    Take,
    abandon,
    already_made,
    beat,
    decide,
)
from pgkeel.backup.schedule import Cron
from pgkeel.backup.schedule_status import BackupScheduleStatus, schedule_status
from pgkeel.dcs import DCSError
from pgkeel.ha.backup_record import KEY, read_record, update_record
from pgkeel.ha.loop import Agent

log = logging.getLogger("pgkeel.agent")

CANARY_EVERY = 60.0  # seconds between canary rows on the primary
REPLICA_POLL = 10.0  # a replica reads the record this often, for a drill assigned to it
TICK = 2.0  # between rounds on the leader, or while this agent's worker runs
ATTEMPTS = 8


class BackupScheduler:
    def __init__(self, agent: Agent, job: BackupJob, engine: BackupEngine | None = None, tick: float = TICK) -> None:
        self.agent = agent
        self.job = job
        self.engine = engine or PgBackRest(job.config_file, job.stanza)
        self.tick = tick
        kinds = (("full", job.full), ("diff", job.diff), (DRILL, job.drill if job.drill_scratch else None))
        self.schedules = {kind: Cron.parse(expr) for kind, expr in kinds if expr}
        ttl = agent.config.ha.ttl
        self.beat_every = max(5.0, 3 * ttl)
        self.stale_after = 4 * self.beat_every
        self.retry_after = 60.0
        self.status: BackupScheduleStatus | None = None  # for /status; None until the record was first read
        self._worker: threading.Thread | None = None
        self._running: str | None = None  # id of the run the worker carries out
        self._last_idle = ""
        self._canary_at: float | None = None  # monotonic time of the last canary write
        self._polled: float | None = None  # monotonic time of the last read of the record
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pgkeel-backups", daemon=True)

    def start(self) -> BackupScheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
            except DCSError as exc:
                log.warning("backup schedule: the store could not be read or written: %s", exc)
            except Exception:  # the thread must survive anything one round throws
                log.exception("backup schedule round failed")
            self._stop.wait(self.tick)

    # --- one round --------------------------------------------------------------------------------
    def is_leader(self) -> bool:
        last = self.agent.last
        me = self.agent.config.name
        return (last is not None and last.cluster is not None and last.cluster.leader_name == me
                and last.pg.running and last.pg.in_recovery is False)

    def write_canary(self, every: float = CANARY_EVERY) -> None:
        """A canary row on the primary every minute (pgkeel.backup.canary), in this thread: its commit is
        local (synchronous_commit=local), so a missing standby never holds it, and the HA loop never waits."""
        now = time.monotonic()
        if self._canary_at is not None and now - self._canary_at < every:
            return
        self._canary_at = now
        try:
            with self.agent.instance.new_connection() as conn:
                conn.execute("SET synchronous_commit = local")
                write_canary(conn, self.agent.config.name)
        except psycopg.Error as exc:  # fenced, read-only (stopWrites), or postgres going away: next minute
            log.debug("canary not written: %s", exc)

    def round(self) -> None:
        leader = self.is_leader()
        if leader:
            self.write_canary()
        mono = time.monotonic()
        if not leader and self._running is None:
            self.status = None  # only the leader schedules and shows the schedule
            if self._polled is not None and mono - self._polled < REPLICA_POLL:
                return  # a replica only looks for a drill assigned to it, every REPLICA_POLL seconds
        self._polled = mono
        record, version = read_record(self.agent.dcs)
        now = time.time()
        if leader:
            self.status = schedule_status(record, self.schedules, now)
        step = decide(Situation(now, self.agent.config.name, leader, self._running, self.schedules, record,
                                self.beat_every, self.stale_after, self.retry_after, self.drill_runner()))
        match step:
            case Idle(reason):
                if reason != self._last_idle:
                    log.debug("backup schedule: %s", reason)
                self._last_idle = reason
            case Seed(seen):
                if self.agent.dcs.set_value(KEY, replace(record, seen=seen).to_json(), version):
                    log.info("backup schedule: following %s", ", ".join(
                        f"{kind} '{cron.expression}'" for kind, cron in self.schedules.items()))
            case Beat(run_id):
                update_record(self.agent.dcs, lambda r: beat(r, run_id, time.time()))
            case Abandon(run):
                log.warning("backup %s (%s on %s) stopped beating %.0fs ago: clearing it, its backup is due again",
                            run.id, run.kind, run.member, now - run.beat)
                update_record(self.agent.dcs, lambda r: abandon(r, run, time.time()) if r.run == run else r)
            case Start(run):
                written = replace(record, run=run)
                if self.agent.dcs.set_value(KEY, written.to_json(), version):
                    if run.member == self.agent.config.name:
                        self._start_worker(run)
                    else:
                        log.info("backup %s: restore drill assigned to %s (a replica: the primary is spared)",
                                 run.id, run.member)
            case Take(run):
                update_record(self.agent.dcs, lambda r: beat(r, run.id, time.time()))
                self._start_worker(run)

    def _start_worker(self, run: Run) -> None:
        why = f"request {run.request}" if run.request else "schedule"
        what = "restore drill" if run.kind == DRILL else f"{run.kind} backup"
        log.info("backup %s: %s (%s)", run.id, what, why)
        self._running = run.id
        self._worker = threading.Thread(target=self._work, args=(run,), name="pgkeel-backup-run", daemon=True)
        self._worker.start()

    # --- the worker ---------------------------------------------------------------------------------
    def _work(self, run: Run) -> None:
        try:
            result = self.execute(run)
        except BackupError as exc:
            result = Result(run.id, run.kind, run.member, run.started, time.time(), False, dict(run.covers),
                            run.request, error=str(exc))
        except Exception as exc:  # a result is recorded whatever happened, or the run would look alive
            log.exception("backup %s failed", run.id)
            result = Result(run.id, run.kind, run.member, run.started, time.time(), False, dict(run.covers),
                            run.request, error=f"{type(exc).__name__}: {exc}")
        if run.kind == DRILL:
            log.log(logging.INFO if result.ok else logging.ERROR, "restore drill %s of backup %s: %s in %.1fs%s",
                    run.id, result.label, "GREEN" if result.ok else "RED", result.finished - result.started,
                    "" if result.ok else f": {result.error}")
        elif result.ok:
            log.info("backup %s: %s backup %s done in %.1fs (from %s)", run.id, run.kind, result.label,
                     result.finished - result.started, result.source)
        else:
            log.error("BACKUP FAILED: %s backup %s: %s", run.kind, run.id, result.error)
        for attempt in range(ATTEMPTS):
            try:
                update_record(self.agent.dcs, lambda r: r.finish(result, time.time()))
                break
            except DCSError as exc:  # the run's beat stops: the next leader clears it after stale_after
                log.warning("backup %s: its result could not be recorded (%s); retrying", run.id, exc)
                time.sleep(min(2.0 * (attempt + 1), 10.0))
        self._running = None

    def drill_runner(self) -> str | None:
        """The most advanced streaming replica, where drills run so they never compete with the primary."""
        last = self.agent.last
        if last is None or last.cluster is None:
            return None
        replicas = [m for name, m in last.cluster.members.items()
                    if name != self.agent.config.name and m.streaming_replica]
        return max(replicas, key=lambda m: m.lsn or 0).name if replicas else None

    def own_host(self) -> PgHost:
        c = self.agent.config
        known = self.job.hosts.get(c.name)
        return known.pg_host(c.superuser) if known else PgHost(c.datadir, c.pg_port, c.socket_dir, c.superuser)

    def standby(self) -> tuple[str, PgHost] | None:
        """The most advanced streaming replica this machine can reach, when the schedule copies from one."""
        last = self.agent.last
        if not self.job.from_standby or last is None or last.cluster is None:
            return None
        replicas = [m for name, m in last.cluster.members.items()
                    if name != self.agent.config.name and m.streaming_replica and name in self.job.hosts]
        if not replicas:
            return None
        best = max(replicas, key=lambda m: m.lsn or 0)
        return best.name, self.job.hosts[best.name].pg_host(self.agent.config.superuser)

    def drill(self, run: Run) -> Result:
        """A restore drill of the newest backup (pgkeel.backup.drill); red is a result with the reason."""
        c = self.agent.config
        if self.job.drill_scratch is None:
            raise BackupError("restore drills need a scratch directory, which this node's configuration lacks")
        setup = DrillSetup(scratch=self.job.drill_scratch, bindir=self.job.bindir or c.bindir, superuser=c.superuser)
        outcome = run_drill(self.engine, setup)
        return Result(run.id, run.kind, c.name, run.started, time.time(), outcome.ok, dict(run.covers), run.request,
                      label=outcome.backup, source=c.name, primary=None, error=outcome.failure,
                      detail={"drill": outcome.as_dict()})

    def execute(self, run: Run) -> Result:
        """Take the run's backup unless the repository already holds one that counts as it; then expire."""
        if run.kind == DRILL:
            return self.drill(run)
        me = self.agent.config.name
        primary = self.own_host()
        created = self.engine.ensure_stanza(primary)
        listed = [(b.type, b.started.timestamp(), b.label) for b in self.engine.info().backups]
        made = already_made(run, listed)
        if made is not None:
            log.info("backup %s: %s backup %s started at or after its time already: not taking another",
                     run.id, made[0], made[2])
            return Result(run.id, run.kind, me, run.started, time.time(), True, dict(run.covers), run.request,
                          label=made[2], source=None, primary=me, detail={"already_made": True})
        source = self.standby()
        kind: BackupType = run.kind  # type: ignore[assignment]
        backup_set = self.engine.backup(kind, primary, source[1] if source else None)
        self.engine.expire()
        return Result(run.id, run.kind, me, run.started, time.time(), True, dict(run.covers), run.request,
                      label=backup_set.label, source=source[0] if source else me, primary=me,
                      detail={"backup": backup_set.as_dict(), "stanza_created": created})
