"""Which base backup runs next, and by whom: one record in the store, one decision. Pure.

The store's `backups` value holds what the schedule has taken care of (`seen`: the latest occurrence
of each kind), the on-demand requests waiting (`pgkeel backup now` through any node's API), the run
under way (who, since when, a heartbeat) and the latest results. Only the leader's agent starts a
run, and only by a compare-and-swap that finds no run recorded, so two agents never both start one.

Neither skipped nor doubled across a failover: a run whose agent stops beating is cleared by the
next leader and its occurrence (or request) becomes due again; before any run starts, the runner
asks the repository whether a backup of that kind already started after the occurrence (the old
leader's pgBackRest may have finished, or still be finishing), and records it instead of taking a
second one. A failed run is retried after `retry_after`; the next occurrence of its kind
supersedes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pgkeel.backup.schedule import Cron

Kind = Literal["full", "diff", "drill"]
# full first: a full backup also takes care of a diff due with it; a drill after both, so it proves the newest
KINDS: tuple[Kind, ...] = ("full", "diff", "drill")
DRILL = "drill"  # a restore drill (pgkeel.backup.drill): run like a backup, one at a time, by the same runner
KEEP_RESULTS = 20


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


@dataclass(frozen=True)
class Request:
    """An on-demand backup asked through the API, waiting for the leader."""

    id: str
    kind: str  # full, diff, incr or drill
    at: float  # epoch seconds
    by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "at": self.at, "by": self.by}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Request:
        return cls(str(raw["id"]), str(raw["kind"]), float(raw["at"]), raw.get("by"))


@dataclass(frozen=True)
class Run:
    """The backup under way: started by `member`, which beats while it runs."""

    id: str
    kind: str
    member: str
    started: float
    beat: float
    not_before: float  # a backup of this kind that started after this counts as this run's
    covers: dict[str, float] = field(default_factory=dict)  # schedule occurrences taken care of on success
    request: str | None = None  # the on-demand request it carries out

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "member": self.member, "started": self.started, "beat": self.beat,
                "not_before": self.not_before, "covers": dict(self.covers), "request": self.request}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Run:
        return cls(str(raw["id"]), str(raw["kind"]), str(raw["member"]), float(raw["started"]), float(raw["beat"]),
                   float(raw["not_before"]), {str(k): float(v) for k, v in (raw.get("covers") or {}).items()},
                   raw.get("request"))


@dataclass(frozen=True)
class Result:
    """How one run ended (newest last in the record)."""

    id: str
    kind: str
    member: str
    started: float
    finished: float
    ok: bool
    covers: dict[str, float] = field(default_factory=dict)
    request: str | None = None
    label: str | None = None
    source: str | None = None  # the member whose files were copied
    primary: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # the backup set, stanza_created, …

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "member": self.member, "started": self.started,
                "finished": self.finished, "ok": self.ok, "covers": dict(self.covers), "request": self.request,
                "label": self.label, "source": self.source, "primary": self.primary, "error": self.error,
                "detail": dict(self.detail)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Result:
        return cls(str(raw["id"]), str(raw["kind"]), str(raw["member"]), float(raw["started"]),
                   float(raw["finished"]), bool(raw["ok"]),
                   {str(k): float(v) for k, v in (raw.get("covers") or {}).items()}, raw.get("request"),
                   raw.get("label"), raw.get("source"), raw.get("primary"), raw.get("error"),
                   dict(raw.get("detail") or {}))


@dataclass(frozen=True)
class BackupRecord:
    """The store's `backups` value."""

    seen: dict[str, float] = field(default_factory=dict)  # kind → epoch of the latest occurrence taken care of
    requests: tuple[Request, ...] = ()
    run: Run | None = None
    results: tuple[Result, ...] = ()
    # stopArchiving dropped WAL at `since` (epoch; after segment `wal`): point-in-time recovery is broken until
    # a full backup started after it. Kept here so neither an agent restart nor a failover forgets it.
    gap: tuple[float, str | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seen": dict(self.seen), "requests": [r.to_json() for r in self.requests],
                "run": self.run.to_json() if self.run else None, "results": [r.to_json() for r in self.results],
                "gap": {"since": self.gap[0], "wal": self.gap[1]} if self.gap else None}

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> BackupRecord:
        if not raw:
            return cls()
        return cls(
            seen={str(k): float(v) for k, v in (raw.get("seen") or {}).items()},
            requests=tuple(Request.from_json(r) for r in raw.get("requests") or ()),
            run=Run.from_json(raw["run"]) if raw.get("run") else None,
            results=tuple(Result.from_json(r) for r in raw.get("results") or ()),
            gap=(float(raw["gap"]["since"]), raw["gap"].get("wal")) if raw.get("gap") else None,
        )

    def result_of(self, request_id: str) -> Result | None:
        return next((r for r in reversed(self.results) if r.request == request_id), None)

    def last_result(self, ok: bool | None = None, drill: bool = False) -> Result | None:
        """The newest backup result (or drill result), optionally only successful or failed ones."""
        return next((r for r in reversed(self.results)
                     if (r.kind == DRILL) == drill and (ok is None or r.ok == ok) and r.error != ABANDONED), None)

    def finish(self, result: Result, now: float) -> BackupRecord:
        """The record once `result` is in: its run cleared (if still the current one), its request gone,
        and on success the occurrences it covered taken care of."""
        seen = dict(self.seen)
        if result.ok or (result.kind == DRILL and result.error != ABANDONED):  # a red drill is a result, not retried
            for kind, occurrence in result.covers.items():
                seen[kind] = max(seen.get(kind, 0.0), occurrence)
        return replace(
            self,
            seen=seen,
            requests=tuple(r for r in self.requests if r.id != result.request),
            run=None if self.run is not None and self.run.id == result.id else self.run,
            results=(*self.results, result)[-KEEP_RESULTS:],
        )


# --- the decision ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Idle:
    reason: str


@dataclass(frozen=True)
class Seed:
    """First sight of a schedule: what fired before the cluster knew it is not run after the fact."""

    seen: dict[str, float]


@dataclass(frozen=True)
class Start:
    run: Run


@dataclass(frozen=True)
class Take:
    """A run the leader assigned to this node (a drill, on a replica): start it here."""

    run: Run


@dataclass(frozen=True)
class Beat:
    run_id: str


@dataclass(frozen=True)
class Abandon:
    """The recorded run's agent stopped beating: clear it, so its occurrence or request is due again."""

    run: Run


Step = Idle | Seed | Start | Take | Beat | Abandon


@dataclass(frozen=True)
class Situation:
    """What the scheduler observed this round."""

    now: float  # epoch seconds
    me: str
    leader: bool  # this node holds the lease and runs the primary
    running_here: str | None  # id of the run this agent's worker is carrying out
    schedules: dict[str, Cron]  # kind → schedule (kinds without one are not scheduled)
    record: BackupRecord
    beat_every: float
    stale_after: float
    retry_after: float
    drill_runner: str | None = None  # a streaming replica to run drills on (spares the primary); None: the leader


def due_occurrences(s: Situation) -> dict[str, float]:
    """kind → latest occurrence not yet taken care of (schedules already seeded only)."""
    now = datetime.fromtimestamp(s.now, tz=UTC)
    due: dict[str, float] = {}
    for kind, cron in s.schedules.items():
        latest = cron.latest(now)
        if latest is not None and kind in s.record.seen and latest.timestamp() > s.record.seen[kind]:
            due[kind] = latest.timestamp()
    return due


def _recently_failed(s: Situation, kind: str, occurrence: float) -> bool:
    return any(not r.ok and r.error != ABANDONED and r.covers.get(kind) == occurrence
               and s.now - r.finished < s.retry_after for r in s.record.results)


ABANDONED = "abandoned: the agent running it stopped beating"


def decide(s: Situation) -> Step:
    run = s.record.run
    if run is not None:
        if s.running_here == run.id:
            return Beat(run.id) if s.now - run.beat >= s.beat_every else Idle(f"{run.kind} backup {run.id} running")
        if run.member == s.me and s.running_here is None and s.now - run.beat <= s.stale_after:
            return Take(run)
        if s.now - run.beat > s.stale_after and s.leader:
            return Abandon(run)
        return Idle(f"{run.kind} backup {run.id} running on {run.member}")
    if not s.leader:
        return Idle("not the leader: the leader's agent runs backups")
    if s.running_here is not None:
        return Idle("this agent's previous backup is still finishing")
    now = datetime.fromtimestamp(s.now, tz=UTC)
    unseen = {kind: latest.timestamp() for kind, cron in s.schedules.items()
              if kind not in s.record.seen and (latest := cron.latest(now)) is not None}
    if unseen:
        return Seed({**s.record.seen, **unseen})
    run_id = f"{s.me}-{int(s.now * 1000)}"

    def runner(kind: str) -> str:
        return (s.drill_runner or s.me) if kind == DRILL else s.me

    if s.record.requests:
        request = s.record.requests[0]
        return Start(Run(run_id, request.kind, runner(request.kind), s.now, s.now, request.at, {}, request.id))
    due = due_occurrences(s)
    for kind in KINDS:
        if kind in due and not _recently_failed(s, kind, due[kind]):
            covers: dict[str, float] = {kind: due[kind]}
            if kind == "full" and "diff" in due:
                covers["diff"] = due["diff"]
            return Start(Run(run_id, kind, runner(kind), s.now, s.now, due[kind], covers))
    return Idle("no backup due")


def already_made(run: Run, backups: list[tuple[str, float, str]]) -> tuple[str, float, str] | None:
    """A backup in the repository that counts as this run's: (type, start epoch, label) of the right kind
    (a full one for a diff) that started at or after run.not_before. On-demand incr counts only an incr;
    a drill is never already made (running one twice costs time, not data)."""
    if run.kind == DRILL:
        return None
    acceptable = {"full": {"full"}, "diff": {"full", "diff"}, "incr": {"incr"}}.get(run.kind, {run.kind})
    if run.request is not None:
        acceptable = {run.kind}
    found = [b for b in backups if b[0] in acceptable and b[1] >= run.not_before]
    return max(found, key=lambda b: b[1]) if found else None


def beat(record: BackupRecord, run_id: str, now: float) -> BackupRecord:
    if record.run is None or record.run.id != run_id:
        return record
    return replace(record, run=replace(record.run, beat=now))


def abandon(record: BackupRecord, run: Run, now: float) -> BackupRecord:
    """Clear a stale run with a result saying so (an on-demand request stays queued: it is tried again)."""
    result = Result(run.id, run.kind, run.member, run.started, now, False, dict(run.covers), None, error=ABANDONED)
    return replace(record.finish(result, now), run=None)
