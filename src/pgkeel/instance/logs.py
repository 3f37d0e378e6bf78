"""postgres.log: bounded, and read back for what the walreceiver said since the last start.

Why rotation by pgkeel and not `logging_collector`: postgres's stderr goes to one file the
agent opened (`InstanceConfig.log_file`, on Kubernetes beside PGDATA on the data volume), and
operators and tests read that file. The collector would move logging to `log_directory`, which
is a cluster-wide GUC rendered by pgconf and a second process to supervise. Instead the file is
rotated (one previous copy, `<log>.1`) whenever it exceeds a bound: by rename at start, when no
postgres holds it open, and by copy-and-truncate while postgres runs (postgres writes with
O_APPEND, so after the truncation it carries on at the new end; lines written during the copy
may be lost, which is acceptable for a diagnostic log and never affects data).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

DEFAULT_LOG_MAX_BYTES = 64 * 1024 * 1024
TAIL_BYTES = 256 * 1024

_START = re.compile(r"starting PostgreSQL \d+")
_RELOAD = re.compile(r"received SIGHUP, reloading configuration files")
_STREAMING = re.compile(r"started streaming WAL from primary")
_WAL_GONE = re.compile(r"requested WAL segment \S+ has already been removed")


def previous(log_file: Path) -> Path:
    return log_file.with_name(log_file.name + ".1")


def rotate_at_start(log_file: Path, max_bytes: int) -> bool:
    """Rename an oversize log to `<log>.1` (replacing the older one); True when rotated."""
    try:
        if log_file.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    os.replace(log_file, previous(log_file))
    return True


def rotate_running(log_file: Path, max_bytes: int) -> bool:
    """Copy an oversize log to `<log>.1` and truncate it in place (postgres keeps its O_APPEND fd)."""
    try:
        if log_file.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    tmp = previous(log_file).with_name(previous(log_file).name + ".tmp")
    shutil.copyfile(log_file, tmp)
    os.replace(tmp, previous(log_file))
    with open(log_file, "r+b") as fh:
        fh.truncate(0)
    return True


def tail_lines(log_file: Path, nbytes: int = TAIL_BYTES) -> list[str]:
    """The last `nbytes` of the log as lines (the first, probably partial, line dropped)."""
    try:
        with open(log_file, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - nbytes))
            data = fh.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if size > nbytes else lines


def wal_gone_in_log(lines: list[str]) -> str | None:
    """The walreceiver's "requested WAL segment … has already been removed" line, when it is the
    latest word since the last start or reload and no successful reconnection followed it.

    Each walreceiver attempt logs "started streaming WAL from primary" and, when the leader lacks
    the WAL, that error right after; a reload may point the node at another leader, so it resets.
    """
    latest: str | None = None
    for line in lines:
        if _START.search(line) or _RELOAD.search(line) or _STREAMING.search(line):
            latest = None
        elif _WAL_GONE.search(line):
            latest = line.strip()
    return latest


START_REASON_LINES = 5
# A password can reach the log in a quoted statement (`PASSWORD 'x'`) or a conninfo (`password=x`).
_QUOTED_SECRET = re.compile(r"(password\s*[=:]?\s*)('[^']*'|\"[^\"]*\")", re.IGNORECASE)
_CONNINFO_SECRET = re.compile(r"(password\s*[=:]\s*)([^\s'\"]+)", re.IGNORECASE)


def mask_secrets(line: str) -> str:
    return _CONNINFO_SECRET.sub(r"\1***", _QUOTED_SECRET.sub(r"\1***", line))


def start_failure_reason(log_file: Path, since: int = 0, lines: int = START_REASON_LINES) -> str:
    """The last lines postgres printed after offset `since` (this start), passwords masked: why it failed."""
    try:
        with open(log_file, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(since, end - 16 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        text = ""
    tail = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n".join(mask_secrets(line) for line in tail[-lines:]) or f"nothing in {log_file}"
