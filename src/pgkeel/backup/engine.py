"""What pgkeel asks of a backup engine, as one small interface, and the plain values it answers with.

pgBackRest is the one implementation (backup/pgbackrest.py); a second engine (barman-cloud) would
implement the same methods. Nothing here runs a process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

BackupType = Literal["full", "diff", "incr"]


@dataclass(frozen=True)
class PgHost:
    """One local PostgreSQL server the engine connects to over its unix socket (peer auth, as postgres)."""

    datadir: Path
    port: int
    socket_dir: Path
    user: str = "postgres"


@dataclass(frozen=True)
class BackupSet:
    """One backup in a repository."""

    label: str
    type: str
    started: datetime
    stopped: datetime
    size: int  # bytes of the database copied
    repo_size: int  # bytes stored in the repository (compressed)
    wal_start: str
    wal_stop: str
    lsn_start: str
    lsn_stop: str
    prior: str | None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["started"], d["stopped"] = self.started.isoformat(), self.stopped.isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackupSet:
        return cls(**{**d, "started": datetime.fromisoformat(d["started"]),
                      "stopped": datetime.fromisoformat(d["stopped"])})


@dataclass(frozen=True)
class RepositoryState:
    """What a repository holds for one stanza: the backups (oldest first) and the archived WAL range."""

    stanza: str
    status: str  # "ok", or the engine's message ("missing stanza path", …)
    backups: tuple[BackupSet, ...]
    wal_min: str | None
    wal_max: str | None
    system_identifier: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stanza": self.stanza,
            "status": self.status,
            "backups": [b.as_dict() for b in self.backups],
            "wal_min": self.wal_min,
            "wal_max": self.wal_max,
            "system_identifier": self.system_identifier,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RepositoryState:
        """What as_dict gave (e.g. a member's GET /backups/repository)."""
        return cls(str(d["stanza"]), str(d["status"]), tuple(BackupSet.from_dict(b) for b in d["backups"]),
                   d.get("wal_min"), d.get("wal_max"), d.get("system_identifier"))


@dataclass(frozen=True)
class Target:
    """Where a restore stops: the end of the archive, a commit time, a WAL position or a restore point."""

    kind: Literal["latest", "time", "lsn", "name"]
    value: str = ""
    time: datetime | None = None  # kind == "time", for choosing the backup

    def describe(self) -> str:
        return "the end of the archive" if self.kind == "latest" else f"{self.kind} {self.value}"


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class BackupError(RuntimeError):
    """A backup, restore or archive operation failed; the message says which and the engine's reason."""


class BackupEngine(Protocol):
    """The operations pgkeel needs; each raises BackupError with the engine's reason on failure."""

    def archive_push(self, wal_path: Path) -> None: ...

    def archive_get(self, wal_name: str, destination: Path, datadir: Path) -> bool: ...

    def ensure_stanza(self, primary: PgHost) -> bool: ...

    def backup(self, kind: BackupType, primary: PgHost, standby: PgHost | None) -> BackupSet: ...

    def restore(self, datadir: Path, target: Target, backup_set: str | None, archive_off: bool = False) -> None: ...

    def expire(self) -> None: ...

    def verify(self) -> str: ...

    def info(self) -> RepositoryState: ...
