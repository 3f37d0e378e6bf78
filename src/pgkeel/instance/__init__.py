"""One PostgreSQL server on one node: its tools, its files, its status."""

from pgkeel.instance.aside import AsideInfo, AsideOccupied
from pgkeel.instance.lsn import format_lsn, parse_lsn
from pgkeel.instance.process import CommandError, RunAs, drop_privileges, run
from pgkeel.instance.rewind import RewindOutcome, RewindResult
from pgkeel.instance.server import (
    ControlData,
    Instance,
    InstanceConfig,
    RewindError,
    RewindIncomplete,
    ServerStatus,
    SlotState,
    slot_name_for,
)
from pgkeel.instance.space import CloneSpace

__all__ = [
    "AsideInfo",
    "AsideOccupied",
    "CloneSpace",
    "CommandError",
    "ControlData",
    "Instance",
    "InstanceConfig",
    "RewindError",
    "RewindIncomplete",
    "RewindOutcome",
    "RewindResult",
    "RunAs",
    "ServerStatus",
    "SlotState",
    "drop_privileges",
    "format_lsn",
    "parse_lsn",
    "run",
    "slot_name_for",
]
