"""One PostgreSQL server on one node: its tools, its files, its status."""

from pgkeel.instance.lsn import format_lsn, parse_lsn
from pgkeel.instance.process import CommandError, RunAs, drop_privileges, run
from pgkeel.instance.server import ControlData, Instance, InstanceConfig, ServerStatus, slot_name_for

__all__ = [
    "CommandError",
    "ControlData",
    "Instance",
    "InstanceConfig",
    "RunAs",
    "ServerStatus",
    "drop_privileges",
    "format_lsn",
    "parse_lsn",
    "run",
    "slot_name_for",
]
