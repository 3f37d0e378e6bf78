"""docs/reference.md is the document's field reference: current, complete, and only what is accepted."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from pgkeel.document import SpecError, parse_cluster
from pgkeel.document.model import PostgresCluster
from pgkeel.document.reference import fields, reference_markdown
from pgkeel.k8s.crd import spec_schema

ROOT = Path(__file__).resolve().parents[3]
LEAVES = [row for row in fields(PostgresCluster) if row.type != "object"]


def test_committed_reference_is_current() -> None:
    committed = (ROOT / "docs" / "reference.md").read_text()
    assert committed == reference_markdown(), "docs/reference.md is stale: run `make reference`"


def test_every_field_says_what_it_means() -> None:
    assert [row.path for row in fields(PostgresCluster) if not row.meaning] == []


def _schema_leaves(schema: dict[str, Any], prefix: str) -> set[str]:
    found: set[str] = set()
    for name, sub in schema.get("properties", {}).items():
        if "properties" in sub:
            found |= _schema_leaves(sub, f"{prefix}{name}.")
        else:
            found.add(f"{prefix}{name}")
            if "properties" in sub.get("items", {}):  # a list of objects: the list and its items' fields
                found |= _schema_leaves(sub["items"], f"{prefix}{name}[].")
    return found


def test_reference_lists_exactly_the_fields_of_the_crd_schema() -> None:
    spec_rows = {row.path for row in LEAVES if row.path.startswith("spec.")}
    assert spec_rows == _schema_leaves(spec_schema(), "spec.")


def _set(data: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


def _base() -> dict[str, Any]:
    return {"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "pg"}}


# Fields inside a list item or an optional object (spec.members[].pgPort, spec.store.etcd.…) need their required
# neighbours around them to be written alone; the tests of those models check their defaults.
_OPTIONAL = tuple(f"{r.path}." for r in fields(PostgresCluster) if r.type.endswith("object") and r.default == "none")


@pytest.mark.parametrize(
    "row", [r for r in LEAVES if r.default.startswith("`") and "[]" not in r.path and not r.path.startswith(_OPTIONAL)],
    ids=lambda r: r.path,
)
def test_each_documented_default_is_the_default_a_document_gets(row: Any) -> None:
    """Writing the documented default explicitly gives the same cluster as leaving the field out."""
    literal = row.default.strip("`")
    kind = row.type.split(" ")[0]
    value: object = literal
    if kind == "boolean":
        value = {"true": True, "false": False}[literal]
    elif kind == "integer":
        value = int(literal)
    elif kind == "number":
        value = float(literal)
    elif kind == "list":
        value = ast.literal_eval(literal)
    explicit = _base()
    _set(explicit, row.path, value)
    assert parse_cluster(explicit) == parse_cluster(_base())


def test_a_field_not_in_the_reference_is_refused() -> None:
    data = _base()
    _set(data, "spec.failover.ttl", 3)
    with pytest.raises(SpecError) as info:
        parse_cluster(data)
    assert any("spec.failover.ttl" in e for e in info.value.errors)
