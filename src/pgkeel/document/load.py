"""Reading a cluster document and turning pydantic's errors into `field.path: problem; fix` lines."""

from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pgkeel.document.model import PostgresCluster


class SpecError(Exception):
    """A cluster document that cannot be used; `errors` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


# Inputs echoed in errors are shortened: YAML aliases can make a 1 KiB document hold a structure
# whose plain repr is gigabytes ("billion laughs"), and an error must stay a line a user can read.
_INPUT = reprlib.Repr()
_INPUT.maxlevel, _INPUT.maxlist, _INPUT.maxdict = 1, 4, 4
_INPUT.maxstring, _INPUT.maxother, _INPUT.maxlong = 160, 160, 80


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.$\[\]-]+")  # [key] is pydantic's mark for a bad dict key


def _path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("function-after", "function-before") or str(item).startswith(("function-", "constrained")):
            continue
        elif isinstance(item, str) and not _PLAIN_KEY.fullmatch(item):
            parts.append(f"[{_INPUT.repr(item)}]")  # a key with blanks or line breaks stays on one line
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(document)"


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling against the documented fields"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}; got {_INPUT.repr(err.get('input'))}"
    if kind in ("value_error", "assertion_error"):
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if "input" in err and kind not in ("value_error",) and not isinstance(err["input"], dict):
        msg = f"{msg}; got {_INPUT.repr(err['input'])}"
    return msg


def format_validation_error(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(prefix) + tuple(err["loc"])
        lines.append(f"{_path(loc)}: {_message(err)}")
    return lines


def parse_cluster(data: Any) -> PostgresCluster:
    """Validate a parsed YAML/JSON document; raise SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(["(document): must be a mapping with apiVersion, kind, metadata and spec"])
    try:
        return PostgresCluster.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None


def load_cluster_text(text: str) -> PostgresCluster:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([f"(document): not valid YAML: {exc}"]) from None
    return parse_cluster(data)


def load_cluster(path: str | Path) -> PostgresCluster:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"{path}: cannot read the cluster document: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise SpecError([f"{path}: not UTF-8 text"]) from None
    return load_cluster_text(text)
