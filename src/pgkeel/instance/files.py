"""Files inside a data directory that pgkeel owns: postgresql.auto.conf and the signal files.

The rendered postgresql.conf is identical on every node; what differs by role and time
(primary_conninfo, primary_slot_name, synchronous_standby_names) goes into
postgresql.auto.conf, which PostgreSQL reads after the main file. pgkeel rewrites that file
whole, so its content is always exactly what the agent decided.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

AUTO_CONF = "postgresql.auto.conf"
STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"
_SAFE_VALUE = re.compile(r"^[^\n\r\x00]*$")


def quote(value: str) -> str:
    """A postgresql.conf string literal."""
    if not _SAFE_VALUE.match(value):
        raise ValueError("configuration values cannot contain line breaks or NUL")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def atomic_write(path: Path, content: str, mode: int = 0o600) -> None:
    """Write via a temp file + rename so a crash never leaves a half-written config."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_auto_conf(datadir: Path) -> dict[str, str]:
    """The settings currently in postgresql.auto.conf (unquoted values)."""
    path = datadir / AUTO_CONF
    result: dict[str, str] = {}
    if not path.exists():
        return result
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, raw = line.partition("=")
        raw = raw.strip()
        if raw.startswith("'") and raw.endswith("'"):
            raw = raw[1:-1].replace("''", "'").replace("\\\\", "\\")
        result[name.strip()] = raw
    return result


def write_auto_conf(datadir: Path, settings: dict[str, str]) -> bool:
    """Replace postgresql.auto.conf with `settings`; return True when the content changed."""
    lines = ["# Managed by the pgkeel agent: rewritten whole on role changes; do not use ALTER SYSTEM."]
    lines += [f"{name} = {quote(value)}" for name, value in sorted(settings.items())]
    content = "\n".join(lines) + "\n"
    path = datadir / AUTO_CONF
    if path.exists() and path.read_text(encoding="utf-8") == content:
        return False
    atomic_write(path, content)
    return True


def set_standby_signal(datadir: Path, standby: bool) -> None:
    signal = datadir / STANDBY_SIGNAL
    if standby:
        signal.touch(mode=0o600, exist_ok=True)
    else:
        signal.unlink(missing_ok=True)
    (datadir / RECOVERY_SIGNAL).unlink(missing_ok=True)
