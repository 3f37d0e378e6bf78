"""`render crd`: a structural schema generated from the pydantic model that accepts what the model accepts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pgkeel.document.model import ClusterSpec
from pgkeel.k8s.crd import crd_manifest, openapi_schema, spec_schema, structural_problems

ROOT = Path(__file__).resolve().parents[3]
VERSIONS = ["1.29", kubernetes_validate.latest_version()]


def root_schema() -> dict[str, Any]:
    return crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def as_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """What the API server enforces, as JSON schema: typed nodes, nullable, unknown fields refused.

    (`kubectl apply` uses strict field validation, so an unknown field is an error, not silently pruned.)
    """
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return {"type": "object"} if node.get("type") == "object" else {}
    out = {k: v for k, v in node.items() if k not in ("nullable", "exclusiveMinimum", "exclusiveMaximum",
                                                       "properties", "items", "additionalProperties")}
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(bound) is True:
            out[bound] = out.pop(plain)
    if "properties" in node:
        out["properties"] = {k: as_jsonschema(v) for k, v in node["properties"].items()}
        out["additionalProperties"] = False
    if "additionalProperties" in node:
        out["additionalProperties"] = as_jsonschema(node["additionalProperties"])
    if "items" in node:
        out["items"] = as_jsonschema(node["items"])
    if node.get("nullable"):
        out["type"] = [out["type"], "null"]
    return out


def check(document: dict[str, Any]) -> None:
    jsonschema.validate(document, as_jsonschema(root_schema()))


@pytest.mark.parametrize("version", VERSIONS)
def test_crd_validates_strictly(version: str) -> None:
    kubernetes_validate.validate(crd_manifest(), version, strict=True)


def test_schema_is_structural() -> None:
    assert structural_problems(root_schema()) == []
    text = yaml.safe_dump(root_schema())
    for forbidden in ("$ref", "$defs", "anyOf", "oneOf", "title", "type: 'null'"):
        assert forbidden not in text


def test_structural_check_catches_what_kubernetes_refuses() -> None:
    bad = {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}, "b": {"$ref": "#/x"},
                                            "c": {"type": "number", "exclusiveMinimum": 0}}}
    problems = structural_problems(bad)
    assert any(".a: anyOf" in p for p in problems)
    assert any(".b: $ref" in p for p in problems)
    assert any(".c: exclusiveMinimum must be a boolean" in p for p in problems)


def test_names_and_version() -> None:
    spec = crd_manifest()["spec"]
    assert crd_manifest()["metadata"]["name"] == "pgkeelclusters.pgkeel.dev"
    assert spec["group"] == "pgkeel.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "PostgresCluster"
    # none of Crunchy PGO's names (postgresclusters / postgrescluster, no shortNames): no shadowing either way
    crunchy = {"postgresclusters", "postgrescluster"}
    names = spec["names"]
    assert not crunchy & {names["plural"], names["singular"], *names["shortNames"]}
    assert "subresources" not in spec["versions"][0]  # nothing writes a status
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]


def test_schema_follows_the_model() -> None:
    props = spec_schema()["properties"]
    assert set(props) == {f.alias or name for name, f in ClusterSpec.model_fields.items()}
    assert props["postgres"]["properties"]["bindir"] == {
        "type": "string", "description": props["postgres"]["properties"]["bindir"]["description"], "nullable": True}
    assert props["postgres"]["properties"]["parameters"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["failover"]["properties"]["loopWaitSeconds"]["exclusiveMinimum"] is True
    assert props["replication"]["properties"]["mode"]["enum"] == ["async", "quorum"]


@pytest.mark.parametrize("name", ["cluster.yaml", "minimal.yaml"])
def test_examples_pass_the_crd_schema(name: str) -> None:
    check(yaml.safe_load((ROOT / "examples" / name).read_text()))


def test_schema_refuses_what_the_model_refuses() -> None:
    good = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    good["spec"]["postgres"]["parameters"] = {"work_mem": "64MB", "max_connections": 200, "jit": False,
                                              "random_page_cost": 1.5}
    good["spec"]["storage"]["storageClass"] = None
    check(good)
    for path, value in ((("spec", "workload"), "nope"), (("spec", "replication", "mode"), "sync"),
                        (("spec", "storage", "sizee"), "1Gi"), (("spec", "failover", "loopWaitSeconds"), 0),
                        (("spec", "postgres", "version"), "15")):
        doc = copy.deepcopy(good)
        node = doc
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            check(doc)


def test_converter_inlines_nested_refs_and_nullable_objects() -> None:
    schema = {
        "$defs": {"Inner": {"type": "object", "properties": {"x": {"type": "integer", "exclusiveMaximum": 5}}},
                  "Outer": {"type": "object", "properties": {"inner": {"$ref": "#/$defs/Inner"}}}},
        "type": "object",
        "properties": {"outer": {"anyOf": [{"$ref": "#/$defs/Outer"}, {"type": "null"}], "default": None}},
    }
    out = openapi_schema(schema)
    outer = out["properties"]["outer"]
    assert outer["nullable"] is True and "default" not in outer
    assert outer["properties"]["inner"]["properties"]["x"] == {"type": "integer", "maximum": 5,
                                                              "exclusiveMaximum": True}
    assert structural_problems(out) == []
