"""What an Instance is configured with and what it reports: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pgkeel.instance.logs import DEFAULT_LOG_MAX_BYTES


@dataclass(frozen=True)
class InstanceConfig:
    """Where one node's server lives and how it is reached."""

    name: str
    bindir: Path
    datadir: Path
    config_file: Path
    host: str
    port: int
    socket_dir: Path
    log_file: Path
    superuser: str
    replication_user: str
    passfile: Path
    superuser_password_file: Path | None = None
    replication_password_file: Path | None = None
    ssl_root_cert: Path | None = None  # cluster CA: peers are verified with sslmode=verify-full
    extra_options: dict[str, str] = field(default_factory=dict)
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES  # postgres.log is rotated past this (see logs.py)

    @property
    def ssl_options(self) -> str:
        if self.ssl_root_cert is None:
            return "sslmode=prefer"
        return f"sslmode=verify-full sslrootcert={self.ssl_root_cert}"

    @property
    def slot_name(self) -> str:
        return slot_name_for(self.name)


def slot_name_for(member: str) -> str:
    """Slot names allow [a-z0-9_] only; member names are DNS labels with '-'."""
    return member.replace("-", "_").replace(".", "_").lower()


@dataclass(frozen=True)
class ControlData:
    """What pg_controldata says about a stopped (or running) data directory."""

    system_identifier: str
    state: str
    timeline: int
    checkpoint_lsn: int

    @property
    def clean_shutdown(self) -> bool:
        return self.state in ("shut down", "shut down in recovery")


@dataclass(frozen=True)
class ReplicaPeer:
    name: str
    state: str
    sync_state: str
    flush_lsn: int | None
    replay_lsn: int | None


@dataclass(frozen=True)
class ServerStatus:
    """A running server as seen over SQL in one round trip."""

    in_recovery: bool
    timeline: int
    lsn: int  # primary: flushed WAL end; replica: max(received, replayed)
    replay_lsn: int | None
    receiver_status: str | None  # 'streaming' etc. on a replica with a WAL receiver
    receiver_host: str | None
    receiver_port: int | None
    peers: tuple[ReplicaPeer, ...]
    system_identifier: str
    sync_standby_names: str
    receive_lsn: int | None = None  # replica: last WAL received and flushed by the walreceiver
    replay_paused: bool | None = None  # replica: pg_is_wal_replay_paused(); None on a primary
    replay_lag_seconds: float | None = None  # replica: age of the last replayed commit while WAL waits; 0 caught up
    pending_restart: tuple[str, ...] = ()  # parameters changed in the files that need a restart
    version: str | None = None  # server_version, e.g. "15.8"


@dataclass(frozen=True)
class SlotState:
    """One physical slot on this server. wal_status (PostgreSQL 13+): 'reserved' and 'extended' are
    healthy; 'unreserved' will be invalidated at the next checkpoint unless its holder catches up;
    'lost' means the WAL is gone and the member using it can only be re-cloned."""

    name: str
    active: bool
    restart_lsn: int | None
    wal_status: str | None
    safe_wal_size: int | None  # bytes that may still be written before the slot is lost

    @property
    def lost(self) -> bool:
        return self.wal_status == "lost"
