"""What a restore drill found, and the rules that judge it: plain values and pure functions, no I/O.

The one rule that needs care is "recovery reached the end of the archive". PostgreSQL ends archive
recovery at the first segment restore_command cannot deliver and promotes, exactly as it does at the
real end of the archive: a gap is silent. So the drill compares the segment holding the last replayed
byte (pg_last_wal_replay_lsn on the timeline it replayed) with the newest segment the repository lists
(RepositoryState.wal_max, read before the restore): behind it means a gap, and the segment after the
last replayed one is the first missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_SEGMENT_SIZE = 16 * 2**20
ARCHIVE_END = "archive-end"


@dataclass(frozen=True)
class Check:
    """One check of the restored copy; detail says what was seen, in words an operator can act on."""

    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class DrillResult:
    """One drill: green (ok) only when every step ran and every check passed."""

    ok: bool
    started: datetime
    finished: datetime
    backup: str | None  # label of the backup restored
    archive_end: str | None  # newest archived segment when the drill began
    recovered_lsn: str | None  # last WAL position replayed
    recovered_timeline: int | None  # the timeline it was replayed on
    recovered_time: datetime | None  # newest of: last replayed commit, newest canary row, the backup's end
    checks: tuple[Check, ...] = ()
    error: str | None = None  # a step that could not run (no backup, restore failed, …); None when all ran
    canary_rows: int | None = None

    @property
    def duration_s(self) -> float:
        return round((self.finished - self.started).total_seconds(), 2)

    @property
    def recovered_lag_s(self) -> float | None:
        """How far the restored copy is behind the moment the drill began (the RPO it proves)."""
        if self.recovered_time is None:
            return None
        return round((self.started - self.recovered_time).total_seconds(), 1)

    @property
    def failure(self) -> str | None:
        """What broke, in one line: the step that could not run, else the first failed check."""
        if self.error is not None:
            return self.error
        failed = next((c for c in self.checks if not c.ok), None)
        return None if failed is None else f"{failed.name}: {failed.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "duration_s": self.duration_s,
            "backup": self.backup,
            "archive_end": self.archive_end,
            "recovered_lsn": self.recovered_lsn,
            "recovered_timeline": self.recovered_timeline,
            "recovered_time": self.recovered_time.isoformat() if self.recovered_time else None,
            "recovered_lag_s": self.recovered_lag_s,
            "canary_rows": self.canary_rows,
            "checks": [c.as_dict() for c in self.checks],
            "error": self.error,
            "failure": self.failure,
        }


def verdict(checks: tuple[Check, ...], error: str | None, required: frozenset[str]) -> bool:
    """Green: nothing failed to run, every check passed, and every required check is there."""
    return error is None and all(c.ok for c in checks) and required <= {c.name for c in checks}


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per_id = 0x1_0000_0000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def parse_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int]:
    """(timeline, segment number) of a WAL file name; ValueError for anything else (a .history, a .partial)."""
    if len(name) != 24:
        raise ValueError(f"not a WAL segment name: {name!r}")
    per_id = 0x1_0000_0000 // segment_size
    return int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:], 16)


def last_segment(end_lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The segment holding the last replayed byte: replay ends at a record's end, which may be a segment's start."""
    return max(end_lsn - 1, 0) // segment_size


def replayed_timeline(history: str) -> int | None:
    """The timeline recovery replayed, from the new timeline's history file: its last line's parent."""
    lines = [line.split() for line in history.splitlines() if line.strip() and not line.startswith("#")]
    return int(lines[-1][0]) if lines else None


def reached_archive_end(end_lsn: int, timeline: int, archive_end: str,
                        segment_size: int = DEFAULT_SEGMENT_SIZE) -> bool:
    return (timeline, last_segment(end_lsn, segment_size)) >= parse_segment(archive_end, segment_size)


def first_unreplayed(end_lsn: int, timeline: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    return segment_name(timeline, last_segment(end_lsn, segment_size) + 1, segment_size)


def judge_archive_end(end_lsn: int, lsn_text: str, timeline: int, archive_end: str, next_state: str | None,
                      segment_size: int = DEFAULT_SEGMENT_SIZE) -> Check:
    """Did recovery replay through the archive's last segment? next_state says what the repository answered
    for the segment after the last replayed one: "missing", or why it could not be used."""
    replayed = segment_name(timeline, last_segment(end_lsn, segment_size), segment_size)
    if reached_archive_end(end_lsn, timeline, archive_end, segment_size):
        return Check(ARCHIVE_END, True, f"replayed through {replayed} ({lsn_text}); the archive ends at {archive_end}")
    end_timeline, _ = parse_segment(archive_end, segment_size)
    if timeline < end_timeline:
        return Check(ARCHIVE_END, False,
                     f"recovery ended on timeline {timeline} at {lsn_text} ({replayed}), but the archive reaches "
                     f"timeline {end_timeline} ({archive_end}): the history file of timeline {end_timeline} or "
                     f"the segment where it begins is missing or unreadable")
    missing = first_unreplayed(end_lsn, timeline, segment_size)
    why = "is missing from the archive" if next_state in (None, "missing") else f"could not be used: {next_state}"
    return Check(ARCHIVE_END, False,
                 f"gap in the archive: segment {missing} {why}; recovery stopped at {lsn_text} ({replayed}) "
                 f"although the archive goes on to {archive_end}. Point-in-time recovery from this backup past "
                 f"{lsn_text} is impossible: take a new full backup (`pgkeel backup now --type full`)")
