"""PostgreSQL's parameter catalogue per major version, shipped as JSON generated from the server itself.

The JSON files come from `scripts/gen_guc_catalogue.py` (`postgres --describe-config` plus
`pg_settings` of a throwaway server), so validation agrees with what the server will accept.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

VarType = Literal["bool", "integer", "real", "string", "enum"]
ChangeKind = Literal["restart", "reload"]

# Contexts whose value is read only when the postmaster starts (internal ones cannot change at all).
_RESTART_CONTEXTS = frozenset({"postmaster", "internal"})


@dataclass(frozen=True)
class Guc:
    """One parameter as the server describes it; min/max are in `unit` (the server's base unit)."""

    name: str
    vartype: VarType
    context: str
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    enumvals: tuple[str, ...] | None = None
    default: str | None = None
    category: str = ""
    short_desc: str = ""

    @property
    def needs_restart(self) -> bool:
        return self.context in _RESTART_CONTEXTS

    @property
    def change(self) -> ChangeKind:
        return "restart" if self.needs_restart else "reload"


@cache
def available_majors() -> tuple[int, ...]:
    """Majors whose catalogue ships with pgkeel."""
    folder = resources.files("pgkeel.pgconf") / "catalogue"
    majors = []
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith("pg") and name.endswith(".json") and name[2:-5].isdigit():
            majors.append(int(name[2:-5]))
    return tuple(sorted(majors))


@cache
def load_catalogue(major: int) -> dict[str, Guc]:
    """Every parameter of one major version by name; KeyError-free lookups are the caller's job."""
    if major not in available_majors():
        shipped = ", ".join(map(str, available_majors()))
        raise ValueError(f"no parameter catalogue for PostgreSQL {major}; pgkeel ships {shipped}")
    path = resources.files("pgkeel.pgconf") / "catalogue" / f"pg{major}.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, Guc] = {}
    for name, p in doc["parameters"].items():
        out[name] = Guc(
            name=name,
            vartype=p["vartype"],
            context=p["context"],
            unit=p.get("unit"),
            min=p.get("min"),
            max=p.get("max"),
            enumvals=tuple(p["enumvals"]) if p.get("enumvals") is not None else None,
            default=p.get("default"),
            category=p.get("category", ""),
            short_desc=p.get("short_desc", ""),
        )
    return out


def is_custom_name(name: str) -> bool:
    """Extension parameters (`pg_stat_statements.track`) are not in the catalogue; the server accepts any."""
    return "." in name


def classify_change(major: int, name: str) -> ChangeKind:
    """Whether changing `name` needs a server restart or only a reload (SIGHUP).

    Extension parameters are unknown to the catalogue: they count as restart, the safe answer.
    """
    guc = load_catalogue(major).get(name)
    if guc is None:
        if is_custom_name(name):
            return "restart"
        raise KeyError(f"unknown parameter {name!r} for PostgreSQL {major}")
    return guc.change


def closest_name(major: int, name: str) -> str | None:
    """The real parameter a typo most likely meant (`shared_bufers` → `shared_buffers`)."""
    names = list(load_catalogue(major))
    matches = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    return matches[0] if matches else None
