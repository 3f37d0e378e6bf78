"""requirements.lock pins the whole tree: every dependency pyproject.toml names, at the version it names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)$")


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _locked() -> dict[str, str]:
    lines = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line and line[0] != "#"]
    found = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"requirements.lock: {line!r} is not name==version"
        found[_name(match.group(1))] = match.group(3)
    return found


def test_every_direct_dependency_is_locked_at_its_pinned_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    locked = _locked()
    for requirement in direct:
        match = PIN.match(requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        assert locked.get(_name(match.group(1))) == match.group(3), f"{requirement}: run `make lock`"


def test_the_lock_holds_more_than_the_direct_dependencies() -> None:
    assert {"annotated-types", "pydantic-core", "httpcore", "idna"} <= set(_locked())  # the tree, not the top
