"""Reading a cluster document and turning pydantic's errors into `field.path: problem; fix` lines."""

from __future__ import annotations

import difflib
import re
import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
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


# Names users bring from other tools (Kubernetes, CloudNativePG) that spelling distance would not find.
_SYNONYMS = {"replicas": "instances", "postgresql": "postgres", "pg": "postgres", "tlsEnabled": "tls"}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The document model that holds the field at `loc`, or None when `loc` is inside free-form data."""
    model: type[BaseModel] = PostgresCluster
    for item in loc:
        field = next((f for n, f in model.model_fields.items() if item in (n, f.alias)), None)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def unknown_field_hint(loc: tuple[Any, ...]) -> str:
    """`; did you mean X?` for an unknown field, from the fields its model has (by wire name)."""
    model = _model_at(loc[:-1])
    name = str(loc[-1]) if loc else ""
    if model is None:
        return ""
    fields = [f.alias or n for n, f in model.model_fields.items()]
    by_lower = {f.lower(): f for f in fields}
    guess = _SYNONYMS.get(name) if _SYNONYMS.get(name) in fields else None
    guess = guess or by_lower.get(name.lower().replace("_", ""))
    if guess is None:
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
        started = [f for f in fields if f.lower().startswith(name.lower())] if len(name) >= 3 else []
        guess = by_lower[close[0]] if close else (started[0] if len(started) == 1 else None)
    if guess is None:
        return f"; the fields here are {', '.join(fields)}"
    return f"; did you mean {guess}?"


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        return "unknown field" + (unknown_field_hint(tuple(err["loc"])) or "; remove it or check its spelling")
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


_UNION_TAGS = {"str": "a string", "int": "a number", "float": "a number", "bool": "a boolean"}


def format_validation_error(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[str]:
    return format_errors(exc.errors(include_url=False), prefix)


def format_errors(errors: list[ErrorDetails], prefix: tuple[Any, ...] = ()) -> list[str]:
    """One line per problem; a value that fits no member of a union (a parameter) is one problem, not four."""
    found: list[tuple[tuple[Any, ...], ErrorDetails]] = []
    unions: dict[tuple[Any, ...], list[str]] = {}  # loc of the value -> what its union would have taken
    for err in errors:
        loc = tuple(prefix) + tuple(err["loc"])
        if len(loc) > 1 and loc[-1] in _UNION_TAGS and "input" in err:
            if loc[:-1] not in unions:
                found.append((loc[:-1], err))
            unions.setdefault(loc[:-1], []).append(_UNION_TAGS[str(loc[-1])])
        else:
            found.append((loc, err))
    lines = []
    for loc, err in found:
        if loc in unions:
            *most, last = dict.fromkeys(unions[loc])
            kinds = f"{', '.join(most)} or {last}" if most else last
            lines.append(f"{_path(loc)}: must be {kinds}; got {_INPUT.repr(err['input'])}")
        else:
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


def _yaml_error(exc: yaml.YAMLError, source: str) -> str:
    """One line naming the source, line and column, and PyYAML's own words (not its `<unicode string>`)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"{source}: not valid YAML: {' '.join(str(exc).split())}"

    def at(mark: yaml.Mark | None) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""

    problem = " ".join(str(exc.problem or exc.context or "").split())
    where = at(exc.problem_mark or exc.context_mark)
    started = f" ({' '.join(str(exc.context).split())} at {at(exc.context_mark)})" if exc.context and exc.problem \
        and exc.context_mark is not None else ""
    return f"{source}: not valid YAML{' at ' + where if where else ''}: {problem}{started}"


def read_yaml(text: str, source: str = "(document)") -> Any:
    """The parsed YAML of `text`; SpecError naming `source` (a file name) and the line when it is not YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_error(exc, source)]) from None


def read_document(path: str | Path) -> Any:
    """The parsed YAML of the file at `path`; SpecError naming the file when it cannot be read or parsed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([f"{path}: cannot read the cluster document: {exc.strerror}; give it with -f FILE"]) from None
    except UnicodeDecodeError:
        raise SpecError([f"{path}: not UTF-8 text"]) from None
    return read_yaml(text, str(path))


def load_cluster_text(text: str) -> PostgresCluster:
    return parse_cluster(read_yaml(text))


def load_cluster(path: str | Path) -> PostgresCluster:
    return parse_cluster(read_document(path))
