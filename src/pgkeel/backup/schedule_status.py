"""What /status, `pgkeel status` and /metrics show of scheduled backups, from the store's record. Pure."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from pgkeel.backup.plan import BackupRecord, Result, iso
from pgkeel.backup.schedule import Cron


class BackupResultStatus(BaseModel):
    kind: str
    ok: bool
    member: str
    started: str
    finished: str
    duration_s: float
    finished_epoch: float
    label: str | None = None
    source: str | None = None
    error: str | None = None
    request: str | None = None

    @classmethod
    def of(cls, r: Result) -> BackupResultStatus:
        return cls(kind=r.kind, ok=r.ok, member=r.member, started=iso(r.started), finished=iso(r.finished),
                   duration_s=round(r.finished - r.started, 3), finished_epoch=r.finished, label=r.label,
                   source=r.source, error=r.error, request=r.request)


class DrillStatus(BaseModel):
    """The newest restore drill: green or red, when, how long, and the point the copy recovered to."""

    ok: bool
    finished: str
    finished_epoch: float
    duration_s: float
    backup: str | None = None
    recovered_lsn: str | None = None
    recovered_lag_s: float | None = Field(default=None, description="drill start − the copy's newest commit")
    failure: str | None = None

    @classmethod
    def of(cls, r: Result) -> DrillStatus:
        drill = r.detail.get("drill") or {}
        return cls(ok=r.ok, finished=iso(r.finished), finished_epoch=r.finished,
                   duration_s=round(r.finished - r.started, 3), backup=r.label,
                   recovered_lsn=drill.get("recovered_lsn"), recovered_lag_s=drill.get("recovered_lag_s"),
                   failure=r.error)


class BackupScheduleStatus(BaseModel):
    running: str | None = Field(default=None, description="kind and member of the backup (or drill) under way")
    running_since: str | None = None
    waiting_requests: int = 0
    last: BackupResultStatus | None = Field(default=None, description="the latest run, whatever its outcome")
    last_success: BackupResultStatus | None = None
    last_drill: DrillStatus | None = None
    next: dict[str, str] = Field(default_factory=dict, description="kind → next scheduled time (UTC)")

    def line(self) -> str:
        """One line for `pgkeel status`."""
        parts = []
        if self.running:
            parts.append(f"running {self.running} since {self.running_since}")
        if self.last is not None and not self.last.ok:
            parts.append(f"LAST BACKUP FAILED ({self.last.kind}, {self.last.finished}): {self.last.error}")
        if self.last_success is not None:
            s = self.last_success
            parts.append(f"last ok {s.kind} {s.label} at {s.finished} ({s.duration_s:.0f}s from {s.source})")
        else:
            parts.append("no backup taken by the schedule yet")
        if self.last_drill is not None:
            d = self.last_drill
            parts.append(f"drill GREEN at {d.finished} (backup {d.backup}, {d.duration_s:.0f}s)" if d.ok
                         else f"DRILL RED at {d.finished}: {d.failure}")
        if self.next:
            parts.append("next " + ", ".join(f"{k} {v}" for k, v in sorted(self.next.items())))
        return "; ".join(parts)


def schedule_status(record: BackupRecord, schedules: dict[str, Cron], now: float) -> BackupScheduleStatus:
    moment = datetime.fromtimestamp(now, tz=UTC)
    upcoming = {kind: nxt.isoformat() for kind, cron in schedules.items() if (nxt := cron.next(moment)) is not None}
    last = record.last_result()
    success = record.last_result(ok=True)
    drill = record.last_result(drill=True)
    run = record.run
    return BackupScheduleStatus(
        running=f"{run.kind} on {run.member}" if run else None,
        running_since=iso(run.started) if run else None,
        waiting_requests=len(record.requests),
        last=BackupResultStatus.of(last) if last else None,
        last_success=BackupResultStatus.of(success) if success else None,
        last_drill=DrillStatus.of(drill) if drill else None,
        next=upcoming,
    )
