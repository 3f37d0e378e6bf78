"""Every problem of a document in one pass, and a stand-in model so later checks can still run.

pydantic stops at a broken field: the parameter and hba checks (in pgconf) need a whole model, so
a user who misspelt `instances` would learn about a misspelt parameter only on the next try. Here
each broken part is replaced by its default (and noted as replaced), so those checks run at once
on everything the user did write correctly. The stand-in is for checking only, never for use.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pgkeel.document.load import SpecError, format_errors, format_validation_error, read_document
from pgkeel.document.model import API_VERSION, KIND, PostgresCluster

_ROUNDS = 8  # each round replaces what the last one refused; real documents settle in two or three
_PLACEHOLDERS: dict[tuple[str, ...], Any] = {  # required fields: stand-ins so the rest can be checked
    ("apiVersion",): API_VERSION,
    ("kind",): KIND,
    ("metadata",): {"name": "unnamed"},
    ("metadata", "name"): "unnamed",
}
_KEEP = "postgres"  # a cross-field error on spec must not hide the parameters from their checks
# what ClusterSpec's cross-field rules look at
_SPEC_RULES_READ = ("spec.instances", "spec.replication", "spec.members", "spec.store")


@dataclass(frozen=True)
class DocumentCheck:
    """The document's own errors, and a model in which every refused part is a default."""

    errors: list[str]
    cluster: PostgresCluster | None  # None: nothing usable (not YAML, not a mapping)
    replaced: frozenset[str] = field(default_factory=frozenset)  # dotted paths standing in with defaults

    def kept(self, path: str) -> bool:
        """Is the value at `path` the document's own (neither it nor a parent was replaced)?"""
        return self.cluster is not None and not any(path == p or path.startswith(p + ".") for p in self.replaced)


def _clean(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(x for x in loc if not (isinstance(x, str) and x.startswith(("function-", "constrained"))))


class _Gone:
    """Marks a refused list item until the round ends (deleting at once would shift later indexes)."""


_GONE = _Gone()


def _replace(data: dict[str, Any], loc: tuple[Any, ...], replaced: set[str], lists: list[list[Any]]) -> bool:
    """Replace the deepest part of `data` on `loc` by its default (drop it) or a placeholder; False if none.

    Called deepest loc first within a round: a loc whose node an earlier one already dropped is done."""
    parent: Any = None
    node: Any = data
    path: list[Any] = []
    for item in loc:
        into_dict = isinstance(node, dict) and isinstance(item, str) and item in node
        into_list = isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node)
        if not (into_dict or into_list):
            break
        parent, node = node, node[item]
        path.append(item)
    dotted = ".".join(map(str, path))
    if any(p.startswith(dotted + ".") for p in replaced) and len(path) < len(loc):
        return True  # e.g. the other members of a union: their node went with the first
    missing = tuple(loc[: len(path) + 1])
    if len(path) < len(loc) and missing in _PLACEHOLDERS and isinstance(node, dict):
        node[missing[-1]] = copy.deepcopy(_PLACEHOLDERS[missing])  # a required field that is absent
        replaced.add(".".join(missing))
        return True
    if not path:
        return False  # the document as a whole: nothing to stand in for it
    if tuple(path) in _PLACEHOLDERS:
        if node == _PLACEHOLDERS[tuple(path)]:
            return False
        parent[path[-1]] = copy.deepcopy(_PLACEHOLDERS[tuple(path)])
    elif path == ["spec"] and isinstance(node, dict) and any(k != _KEEP for k in node):
        for other in [k for k in node if k != _KEEP]:  # a cross-field rule: its fields go, postgres stays
            del node[other]
            replaced.add(f"spec.{other}")
        return True
    elif isinstance(parent, dict):
        del parent[path[-1]]
    elif parent[path[-1]] is not _GONE:
        parent[path[-1]] = _GONE
        lists.append(parent)
    replaced.add(dotted)
    return True


def check_cluster(data: Any) -> DocumentCheck:
    """Every document error (as parse_cluster lists them) and a stand-in model for the checks after it."""
    if not isinstance(data, dict):
        return DocumentCheck(["(document): must be a mapping with apiVersion, kind, metadata and spec"], None)
    try:
        return DocumentCheck([], PostgresCluster.model_validate(data))
    except ValidationError as exc:
        errors = format_validation_error(exc)
        first = exc
    work = copy.deepcopy(data)
    replaced: set[str] = set()
    for _ in range(_ROUNDS):
        lists: list[list[Any]] = []
        locs = sorted({_clean(tuple(e["loc"])) for e in first.errors()}, key=len, reverse=True)
        if not any([_replace(work, loc, replaced, lists) for loc in locs]):
            break
        for items in lists:
            items[:] = [x for x in items if x is not _GONE]
        try:
            return DocumentCheck(errors, PostgresCluster.model_validate(work), frozenset(replaced))
        except ValidationError as again:
            first = again
        errors += format_errors([e for e in first.errors(include_url=False)
                                 if _genuine(_clean(tuple(e["loc"])), e["type"], replaced)])
    return DocumentCheck(errors, None, frozenset(replaced))


def _genuine(loc: tuple[Any, ...], kind: str, replaced: set[str]) -> bool:
    """An error a later round found (a rule pydantic skipped while a field was broken) that no stand-in caused.

    A stand-in at or under the rule's node may have caused it; spec's own rules read only _SPEC_RULES_READ."""
    dotted = ".".join(map(str, loc))
    for p in replaced:
        if p == dotted or dotted.startswith(p + "."):
            return False
        if p.startswith(dotted + ".") and (dotted != "spec" or p.startswith(_SPEC_RULES_READ)):
            return False
    return kind != "missing" and bool(loc)


def check_cluster_file(path: str | Path) -> DocumentCheck:
    """check_cluster of a file; a file that cannot be read or parsed gives its one error and no model."""
    try:
        data = read_document(path)
    except SpecError as exc:
        return DocumentCheck(exc.errors, None)
    return check_cluster(data)
