"""Files inside a data directory that pgkeel owns: postgresql.auto.conf and the signal files.

The rendered postgresql.conf is identical on every node; what differs by role and time
(primary_conninfo, primary_slot_name, synchronous_standby_names) goes into
postgresql.auto.conf, which PostgreSQL reads after the main file. The agent owns only those
lines (AGENT_SETTINGS) and replaces them at every role change; any other line is an operator's
ALTER SYSTEM, kept as written (as Patroni does) and reported as drift from the document, because
it lives on this node only and a failover to another node would silently drop it.
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


AGENT_SETTINGS = frozenset({
    "primary_conninfo", "primary_slot_name", "recovery_target_timeline", "synchronous_standby_names",
})
_HEADER = (
    "# pgkeel agent: primary_conninfo, primary_slot_name, recovery_target_timeline and synchronous_standby_names\n"
    "# are set here at role changes. Other lines (ALTER SYSTEM) are kept, on this node only, and reported as\n"
    "# drift: put such settings in spec.postgres.parameters to have them on every node.\n"
)
_KEPT = "# kept: not set by pgkeel (ALTER SYSTEM on this node)"


def _entries(datadir: Path) -> list[tuple[str, str]]:
    """(lower-case parameter name, the line) for each setting in postgresql.auto.conf."""
    path = datadir / AUTO_CONF
    if not path.exists():
        return []
    found: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue  # comments: PostgreSQL's header or ours, written again below
        name = text.partition("=")[0] if "=" in text else text.split()[0]  # `name value` is valid too
        found.append((name.strip().lower(), text))
    return found


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("'") and raw.endswith("'"):
        raw = raw[1:-1].replace("''", "'").replace("\\\\", "\\")
    return raw


def read_auto_conf(datadir: Path) -> dict[str, str]:
    """The settings currently in postgresql.auto.conf (unquoted values)."""
    return {name: _unquote(line.partition("=")[2]) for name, line in _entries(datadir)}


def auto_conf_drift(datadir: Path) -> list[str]:
    """Parameters postgresql.auto.conf sets that the agent does not (ALTER SYSTEM): this node differs from
    the document, and another node would not have them after a failover."""
    return sorted({name for name, _ in _entries(datadir) if name not in AGENT_SETTINGS})


def write_auto_conf(datadir: Path, settings: dict[str, str]) -> bool:
    """Set the agent's lines of postgresql.auto.conf to `settings`, keeping every other line as written;
    return True when the content changed."""
    unknown = set(settings) - AGENT_SETTINGS
    if unknown:
        raise ValueError(f"not the agent's to set in {AUTO_CONF}: {', '.join(sorted(unknown))}")
    kept = [line for name, line in _entries(datadir) if name not in AGENT_SETTINGS]
    lines = [f"{name} = {quote(value)}" for name, value in sorted(settings.items())]
    if kept:
        lines += [_KEPT, *kept]
    content = _HEADER + "\n".join(lines) + "\n"
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


def drop_auto_conf_settings(datadir: Path, names: frozenset[str]) -> list[str]:
    """Remove the lines of postgresql.auto.conf that set any of `names` (a restore's recovery settings,
    which must not outlive it); return the names removed."""
    path = datadir / AUTO_CONF
    entries = _entries(datadir)
    dropped = sorted({name for name, _ in entries if name in names})
    if dropped:
        owner = path.stat()
        kept = [line for name, line in entries if name not in names]
        atomic_write(path, "\n".join(kept) + "\n" if kept else "")
        os.chown(path, owner.st_uid, owner.st_gid)  # postgres must still read it when we run as root
    return dropped
