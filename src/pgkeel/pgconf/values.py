"""Parameter values: parse a user's value against the catalogue the way the server would, and format ours.

We check type, unit and range before PostgreSQL sees the file because a server that rejects its
config at start is a node that does not come back after a failover.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pgkeel.pgconf.catalogue import Guc

MEMORY_UNITS: dict[str, int] = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME_UNITS: dict[str, float] = {
    "us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0,
}
_TRUE = frozenset({"on", "true", "yes", "1"})
_FALSE = frozenset({"off", "false", "no", "0"})
_NUMBER = re.compile(r"^\s*(?P<num>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z]+)?\s*$")
_K8S_HINT = {"Ki": "kB", "Mi": "MB", "Gi": "GB", "Ti": "TB", "KB": "kB", "kb": "kB", "mb": "MB", "gb": "GB", "tb": "TB"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

ParameterValue = str | int | float | bool


@dataclass(frozen=True)
class Parsed:
    """A validated value: `text` as pgkeel writes it; `base` in the parameter's own unit (numbers only)."""

    text: str
    base: float | None = None


def unit_factor(unit: str | None) -> tuple[str, float] | None:
    """('memory', bytes) or ('time', ms) for a catalogue unit such as `8kB` or `min`; None if unitless."""
    if not unit:
        return None
    match = re.fullmatch(r"(\d*)([A-Za-z]+)", unit)
    if not match:
        return None
    count = int(match.group(1) or 1)
    if match.group(2) in MEMORY_UNITS:
        return "memory", count * MEMORY_UNITS[match.group(2)]
    if match.group(2) in TIME_UNITS:
        return "time", count * TIME_UNITS[match.group(2)]
    return None


def _describe_range(guc: Guc) -> str:
    unit = f" × {guc.unit}" if guc.unit and guc.unit[0].isdigit() else (f" {guc.unit}" if guc.unit else "")
    return f"between {_num(guc.min)} and {_num(guc.max)}{unit}"


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def parse_value(guc: Guc, raw: ParameterValue) -> Parsed:
    """Validate `raw` for `guc`; raise ValueError with a message that says what to write instead."""
    if isinstance(raw, bool):
        word = "on" if raw else "off"
        if guc.vartype == "bool" or (guc.vartype == "enum" and word in (guc.enumvals or ())):
            return Parsed(word)
        raw = word  # YAML turned `on` into true: report it as the user wrote it
    if isinstance(raw, str) and _CONTROL.search(raw):
        raise ValueError("contains a line break or control character; give a single-line value")
    if guc.vartype == "bool":
        return _parse_bool(raw)
    if guc.vartype == "enum":
        return _parse_enum(guc, raw)
    if guc.vartype in ("integer", "real"):
        return _parse_number(guc, raw)
    return Parsed(str(raw))


def _parse_bool(raw: ParameterValue) -> Parsed:
    word = str(raw).strip().lower()
    if word in _TRUE:
        return Parsed("on")
    if word in _FALSE:
        return Parsed("off")
    raise ValueError(f"must be a boolean (on or off); got {raw!r}")


def _parse_enum(guc: Guc, raw: ParameterValue) -> Parsed:
    word = str(raw).strip().lower()
    allowed = guc.enumvals or ()
    for value in allowed:  # PostgreSQL matches enum values case-insensitively (TLSv1.2, tlsv1.2)
        if word == value.lower():
            return Parsed(value)
    raise ValueError(f"must be one of {', '.join(allowed)}; got {raw!r}")


def _parse_number(guc: Guc, raw: ParameterValue) -> Parsed:
    kind = "an integer" if guc.vartype == "integer" else "a number"
    family = unit_factor(guc.unit)
    if isinstance(raw, int | float):
        number, unit, text = float(raw), None, str(raw)
    else:
        match = _NUMBER.match(raw)
        if not match:
            hint = f", optionally with a unit ({', '.join(_units_for(family))})" if family else ""
            raise ValueError(f"must be {kind}{hint}; got {raw!r}")
        number, unit = float(match["num"]), match["unit"]
        text = f"{match['num']}{unit or ''}"
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"must be a finite number; got {raw!r}")
    base = number
    if unit is not None:
        if family is None:
            raise ValueError(f"takes no unit; write a plain number; got {raw!r}")
        table = MEMORY_UNITS if family[0] == "memory" else TIME_UNITS
        if unit not in table:
            hint = f" (did you mean {_K8S_HINT[unit]}?)" if unit in _K8S_HINT else ""
            raise ValueError(
                f"unit {unit!r} is not valid for this {family[0]} parameter{hint}; "
                f"use one of {', '.join(_units_for(family))}; got {raw!r}"
            )
        base = number * table[unit] / family[1]
        if math.isinf(base):  # e.g. 1e308GB: finite as written, infinite in the parameter's unit
            raise ValueError(f"out of range: must be {_describe_range(guc)}; got {raw!r}")
    if guc.vartype == "integer":
        if unit is None and not float(number).is_integer():
            raise ValueError(f"must be an integer; got {raw!r}")
        base = float(math.floor(base + 0.5)) if base >= 0 else float(-math.floor(-base + 0.5))
    if (guc.min is not None and base < guc.min) or (guc.max is not None and base > guc.max):
        raise ValueError(f"out of range: must be {_describe_range(guc)}; got {raw!r}")
    return Parsed(text, base)


def _units_for(family: tuple[str, float] | None) -> list[str]:
    if family is None:
        return []
    return list(MEMORY_UNITS) if family[0] == "memory" else list(TIME_UNITS)


def format_bytes_for(guc_unit: str | None, n_bytes: int) -> str:
    """Bytes → the largest of TB/GB/MB/kB that is exact, after rounding down to the parameter's unit.

    Exactness matters: the server rounds to its unit, and `explain` promises the written value.
    """
    family = unit_factor(guc_unit)
    step = int(family[1]) if family and family[0] == "memory" else 1024
    n = (n_bytes // step) * step
    for name in ("TB", "GB", "MB", "kB"):
        factor = MEMORY_UNITS[name]
        if n >= factor and n % factor == 0:
            return f"{n // factor}{name}"
    return f"{n}B"


def human_bytes(n_bytes: int) -> str:
    """A short human form for reasons: 1073741824 → 1GB, 3932160 → 3.75MB."""
    for name in ("TB", "GB", "MB", "kB"):
        factor = MEMORY_UNITS[name]
        if n_bytes >= factor:
            value = n_bytes / factor
            return f"{value:.0f}{name}" if value.is_integer() else f"{value:.2f}".rstrip("0").rstrip(".") + name
    return f"{n_bytes}B"


_BARE = re.compile(r"^([-+]?\d+(\.\d+)?[A-Za-z]*|[A-Za-z_][A-Za-z0-9_-]*)$")


def conf_token(value: str, vartype: str) -> str:
    """How a value appears after `=`: numbers, units and keywords bare (like the seed), strings quoted."""
    return value if vartype != "string" and _BARE.match(value) else quote(value)


def quote(value: str) -> str:
    """A postgresql.conf string literal: quotes doubled, backslashes escaped (the lexer reads both)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
