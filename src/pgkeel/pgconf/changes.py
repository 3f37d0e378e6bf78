"""What applying another document changes in postgres: the diff of two rendered postgresql.conf files,
each parameter classified reload or restart, and the direction of the parameters a standby must not
have lower than its primary.

Why the rendered files and not the documents: tuning derives many values from a few fields (memory
→ shared_buffers, work_mem …), so only the rendered settings say what postgres will be told.
Pure: text in, values out; the local cluster reads the files and asks postgres.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pgkeel.pgconf.catalogue import ChangeKind, Guc, classify_change, load_catalogue
from pgkeel.pgconf.values import parse_value

# PostgreSQL refuses to run a hot standby whose value is lower than its primary's (the primary
# announces its values in the WAL): raise them on the standbys first, lower them on the primary first.
STANDBY_FLOORS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


@dataclass(frozen=True)
class ParameterChange:
    """One parameter whose rendered value differs; None: not set in that file (the server's default)."""

    name: str
    old: str | None
    new: str | None
    change: ChangeKind

    @property
    def shown_old(self) -> str:
        return self.old if self.old is not None else "(default)"

    @property
    def shown_new(self) -> str:
        return self.new if self.new is not None else "(default)"


def parse_conf(text: str) -> dict[str, str]:
    """`name = value` lines of a postgresql.conf, values unquoted as the server reads them; the last one wins."""
    settings: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, _, rest = stripped.partition("=")
        settings[name.strip().lower()] = _value(rest.strip())
    return settings


def _value(rest: str) -> str:
    """The value at the start of `rest`: a quoted string ('' and backslash escapes) or a bare token."""
    if not rest.startswith("'"):
        words = rest.split("#", 1)[0].split()
        return words[0] if words else ""
    out, i = [], 1
    while i < len(rest):
        ch = rest[i]
        if ch == "\\" and i + 1 < len(rest):
            out.append(rest[i + 1])
            i += 2
        elif ch == "'" and rest[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
        elif ch == "'":
            break
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def diff_settings(major: int, old: dict[str, str], new: dict[str, str]) -> list[ParameterChange]:
    """Every parameter set differently in `new` than in `old` (added, changed, removed), by name."""
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after or _same(major, name, before, after):
            continue
        changes.append(ParameterChange(name, before, after, _kind(major, name)))
    return changes


def _kind(major: int, name: str) -> ChangeKind:
    try:
        return classify_change(major, name)
    except KeyError:  # not a parameter of this major (it would not have rendered): the safe answer
        return "restart"


def _same(major: int, name: str, before: str | None, after: str | None) -> bool:
    """Two spellings of one value (`1024kB` and `1MB`, `true` and `on`)."""
    guc = load_catalogue(major).get(name)
    if guc is None or before is None or after is None:
        return False
    return normalized(guc, before) == normalized(guc, after)


def normalized(guc: Guc, value: str) -> str | float:
    """A value as the server holds it: numbers in the parameter's unit, booleans on/off, enums as listed."""
    try:
        parsed = parse_value(guc, value)
    except ValueError:
        return value
    return parsed.base if parsed.base is not None else parsed.text


def matches_setting(guc: Guc, wanted: str, setting: str) -> bool:
    """Whether pg_settings.setting (already in the parameter's unit) is the value `wanted` as written."""
    want = normalized(guc, wanted)
    if isinstance(want, float):
        try:
            return abs(float(setting) - want) <= 1e-9 * max(1.0, abs(want))
        except ValueError:
            return False
    if guc.vartype in ("bool", "enum"):
        return str(want).lower() == setting.lower()
    return str(want) == setting


@dataclass(frozen=True)
class FloorChange:
    """The standby-floor parameters that go up and down between two values each."""

    raised: tuple[str, ...]
    lowered: tuple[str, ...]

    @property
    def mixed(self) -> bool:
        return bool(self.raised) and bool(self.lowered)


def floor_change(major: int, values: Mapping[str, tuple[str | None, str | None]]) -> FloorChange:
    """Which of STANDBY_FLOORS rise or fall, from (old, new) per name; None: the server's default."""
    catalogue = load_catalogue(major)
    raised: list[str] = []
    lowered: list[str] = []
    for name in STANDBY_FLOORS:
        if name not in values:
            continue
        guc = catalogue[name]
        old, new = (_number(guc, v) for v in values[name])
        if old is None or new is None or old == new:
            continue
        (raised if new > old else lowered).append(name)
    return FloorChange(tuple(raised), tuple(lowered))


def _number(guc: Guc, value: str | None) -> float | None:
    found = normalized(guc, value if value is not None else (guc.default or ""))
    return found if isinstance(found, float) else None


def mixed_floor_error(floors: FloorChange) -> str:
    """Why one change cannot raise some floor parameters and lower others, and what to do instead."""
    return (
        f"spec.postgres.parameters: {', '.join(floors.raised)} go up and {', '.join(floors.lowered)} go down: "
        "PostgreSQL needs the standbys restarted first for a raise and the primary first for a lowering, "
        "so no order does both; apply the raise and the lowering as two documents, one after the other"
    )
