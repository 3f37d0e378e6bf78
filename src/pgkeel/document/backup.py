"""`spec.backup` and `spec.bootstrap`: where backups and archived WAL go, and restoring a new cluster.

Kept beside model.py (which only adds the two fields) so the backup settings read as one unit.
Secrets are never in the document: it names 0600 files (S3 keys, the encryption passphrase).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from pgkeel.document.base import Model as _Model
from pgkeel.document.cron import check_cron
from pgkeel.document.quantity import QuantityError, parse_bytes

PGBACKREST_CONF = "pgbackrest.conf"  # the cluster's pgBackRest config, beside postgresql.conf on every node
_LSN = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
_RESTORE_POINT = re.compile(r"^[^\x00-\x1f'\"\\]{1,63}$")  # a name pg_create_restore_point accepts


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path (starting with /); got {value!r}")
    return value


AbsolutePath = Annotated[str, AfterValidator(_absolute)]
Cron = Annotated[str, AfterValidator(check_cron)]


class VolumeRepository(_Model):
    """A posix repository: a directory or a mounted volume, writable by the postgres OS user."""

    path: AbsolutePath = Field(description="Directory of the repository, e.g. `/var/lib/pgbackrest`.")
    claim_name: str | None = Field(
        default=None,
        description="Kubernetes only: an existing ReadWriteMany PersistentVolumeClaim mounted at `path` in every pod "
        "(whichever pod is primary archives into it). Required for a volume repository on Kubernetes; ignored "
        "elsewhere.",
    )


class S3Repository(_Model):
    """An S3-compatible bucket (pgBackRest speaks HTTPS only)."""

    endpoint: str = Field(
        description="Host[:port] of the S3 service, e.g. `s3.eu-west-1.amazonaws.com` or `minio.internal:9000`; "
        "a DNS name the certificate names (pgBackRest 2.45 does not match IP addresses in certificates)."
    )
    bucket: str = Field(description="Bucket name.")
    region: str = Field(default="us-east-1", description="Bucket region.")
    path: AbsolutePath = Field(default="/pgbackrest", description="Prefix inside the bucket.")
    uri_style: Literal["host", "path"] = Field(
        default="host", description="host: bucket.endpoint; path: endpoint/bucket (MinIO, SeaweedFS)."
    )
    credentials_file: AbsolutePath = Field(
        description="0600 file with two lines `accessKeyId=…` and `secretAccessKey=…`; never in the document."
    )
    ca_file: AbsolutePath | None = Field(default=None, description="CA bundle to verify the endpoint's certificate.")

    @field_validator("endpoint")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if "://" in value or "/" in value:
            raise ValueError(f"give host[:port] only (HTTPS is implied); got {value!r}")
        host, sep, port = value.partition(":")
        if not host or ":" in port or "[" in value:
            raise ValueError(f"give a host name and an optional :port (no IPv6 address); got {value!r}")
        if sep and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"the port must be a number 1–65535; got {value!r}")
        return value

    @property
    def host(self) -> str:
        """The endpoint without its port: pgBackRest wants the port apart (repo-storage-port)."""
        return self.endpoint.partition(":")[0]

    @property
    def port(self) -> int | None:
        """The endpoint's port, None for HTTPS's default (443)."""
        port = self.endpoint.partition(":")[2]
        return int(port) if port else None


class Repository(_Model):
    """One repository: exactly one of `volume` or `s3`."""

    volume: VolumeRepository | None = Field(default=None, description="A posix directory or mounted volume.")
    s3: S3Repository | None = Field(default=None, description="An S3-compatible bucket.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Repository:
        if (self.volume is None) == (self.s3 is None):
            raise ValueError("give exactly one of volume: {path: …} or s3: {endpoint: …, bucket: …, …}")
        return self


class Schedule(_Model):
    """When base backups run (cron: minute hour day-of-month month day-of-week, UTC)."""

    full: Cron | None = Field(default="0 1 * * 0", description="Full backups; default Sundays at 01:00.")
    diff: Cron | None = Field(default="0 1 * * 1-6", description="Differential backups; default other days at 01:00.")
    drill: Cron | None = Field(
        default="0 3 * * 0",
        description="Restore drills (`pgkeel backup verify`): the newest backup restored into a scratch copy, the "
        "archive replayed, the copy checked; default Sundays at 03:00, after the weekly full backup. Needs free "
        "space for one copy of the database; null: on demand only.",
    )


class Retention(_Model):
    """How many full backups are kept (by count or by age); older ones and their WAL are expired."""

    full: int | None = Field(default=2, ge=1, le=9999, description="Full backups to keep.")
    full_days: int | None = Field(
        default=None, ge=1, le=9999, description="Keep full backups this many days instead of by count."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Retention:
        if self.full_days is not None and "full" in self.model_fields_set and self.full is not None:
            raise ValueError(
                "give either full (a count) or fullDays (an age): pgBackRest keeps full backups by one of "
                "them; remove the other"
            )
        return self


class Encryption(_Model):
    """Repository encryption (aes-256-cbc); the passphrase lives in a 0600 file."""

    passphrase_file: AbsolutePath = Field(description="0600 file holding the passphrase (one line).")


def _size(value: str) -> str:
    try:
        parse_bytes(value)
    except QuantityError as exc:
        raise ValueError(str(exc)) from None
    return value


Size = Annotated[str, AfterValidator(_size)]
WAL_SEGMENT = 16 * 2**20
# WAL held for someone else (slots of lagging members, and the archive backlog) shares a fifth of the volume.
HELD_WAL_DIVISOR = 5
DEFAULT_BACKLOG_DIVISOR = 10  # maxBacklog unset: a tenth of the volume (half of the held-WAL share)


class Archive(_Model):
    """What happens when WAL cannot be archived: the backlog is bounded, and past the bound one explicit choice."""

    max_backlog: Size | None = Field(
        default=None,
        description="Most WAL that may wait in pg_wal for the archive, e.g. `2Gi`; default a tenth of "
        "spec.storage.size. Counts against the WAL budget (max_slot_wal_keep_size gets the rest of its fifth).",
    )
    on_backlog_full: Literal["stopArchiving", "stopWrites"] = Field(
        default="stopArchiving",
        description="stopArchiving: pgBackRest drops WAL past maxBacklog, the cluster keeps serving, point-in-time "
        "recovery has a gap until the next full backup (alerted). stopWrites: the primary turns read-only "
        "(default_transaction_read_only) until the backlog drains to half of maxBacklog; nothing is lost from "
        "the archive.",
    )

    def backlog_bytes(self, volume: int) -> int:
        """The bound in bytes: the document's value, else a tenth of the volume (whole segments)."""
        if self.max_backlog is not None:
            return parse_bytes(self.max_backlog)
        return max(2 * WAL_SEGMENT, volume // DEFAULT_BACKLOG_DIVISOR // WAL_SEGMENT * WAL_SEGMENT)


class BackupSpec(_Model):
    """Base backups and continuous WAL archiving with pgBackRest (stanza = metadata.name)."""

    repositories: list[Repository] = Field(description="Where backups and WAL go: repo1, repo2, … in this order.")
    schedule: Schedule = Field(default_factory=Schedule)
    retention: Retention = Field(default_factory=Retention)
    from_standby: bool = Field(
        default=True, description="Copy files from a streaming replica when one is healthy (the primary is spared)."
    )
    encryption: Encryption | None = Field(default=None, description="Encrypt every repository with a passphrase.")
    archive: Archive = Field(default_factory=Archive)

    @field_validator("repositories")
    @classmethod
    def _some(cls, values: list[Repository]) -> list[Repository]:
        if not values:
            raise ValueError("list at least one repository, e.g. [{volume: {path: /var/lib/pgbackrest}}]")
        if len(values) > 4:
            raise ValueError(f"pgBackRest supports at most 4 repositories; got {len(values)}")
        return values


class RecoveryTarget(_Model):
    """A point to recover to: exactly one of time, lsn or name."""

    time: datetime | None = Field(default=None, description="Commit time with a UTC offset, e.g. 2024-05-01T12:00:00Z.")
    lsn: str | None = Field(default=None, description="WAL position, e.g. `0/3000060`.")
    name: str | None = Field(default=None, description="A restore point made with pg_create_restore_point().")

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"needs a UTC offset, e.g. {value.isoformat()}Z or {value.isoformat()}+02:00")
        return value

    @field_validator("lsn")
    @classmethod
    def _lsn(cls, value: str | None) -> str | None:
        if value is not None and not _LSN.fullmatch(value):
            raise ValueError(f"must be a WAL position like 0/3000060 (two hex numbers); got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _RESTORE_POINT.fullmatch(value):
            raise ValueError(f"must be 1–63 printable characters without quotes or backslashes; got {value!r}")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> RecoveryTarget:
        given = [k for k in ("time", "lsn", "name") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of time, lsn or name (or target: latest)"
                + (f"; got {', '.join(given)}" if given else "")
            )
        return self


class FromBackup(_Model):
    """Restore the first member from a backup, replay to the target and promote; the others clone from it."""

    repository: Repository = Field(description="The repository holding the backups (as in spec.backup).")
    cluster_name: str | None = Field(
        default=None, description="metadata.name of the cluster that made the backups (its stanza); default ours."
    )
    target: Literal["latest"] | RecoveryTarget = Field(
        default="latest", description="`latest` (the end of the archive) or {time | lsn | name}."
    )
    encryption: Encryption | None = Field(default=None, description="Passphrase of an encrypted repository.")


class Bootstrap(_Model):
    """How the first member gets its data: initdb (default) or a restore."""

    from_backup: FromBackup | None = Field(default=None, description="Point-in-time recovery into this new cluster.")
