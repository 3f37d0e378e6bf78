"""The PostgresCluster CustomResourceDefinition, its schema generated from the pydantic model.

Kubernetes accepts only *structural* OpenAPI v3 schemas: no $ref, no anyOf/oneOf carrying types,
a type on every node, `nullable` instead of a null type, OpenAPI's boolean exclusiveMinimum.
`openapi_schema` converts pydantic's JSON schema accordingly; `structural_problems` checks
the result the way the API server would, so tests catch a model change that breaks the CRD.
"""

from __future__ import annotations

from typing import Any

from pgkeel.document.model import API_VERSION, KIND, schema_for_crd

GROUP, VERSION = API_VERSION.split("/")
# Not `postgresclusters`: Crunchy PGO's CRD has that plural, singular and kind in its own group, and
# `kubectl get postgresclusters` would then resolve to one group and silently hide the other. The kind stays
# PostgresCluster (documents carry apiVersion pgkeel.dev/v1alpha1, which is unambiguous).
PLURAL = "pgkeelclusters"
SINGULAR = "pgkeelcluster"
SHORT_NAMES = ["pgk"]

# Keys of JSON schema that the CRD keeps as they are.
_KEEP = (
    "type",
    "description",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "uniqueItems",
    "default",
)
# Scalar unions (str | int | float | bool) cannot be typed structurally: keep them, unvalidated here.
_PRESERVE = {"x-kubernetes-preserve-unknown-fields": True}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(merged, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        concrete = [v for v in variants if v.get("type") != "null"]
        nullable = len(concrete) < len(variants)
        base = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        if len(concrete) == 1:
            variant = _convert({**concrete[0], **base}, defs)
        else:
            variant = {k: base[k] for k in ("description",) if k in base} | _PRESERVE
        if nullable:
            variant["nullable"] = True
            if variant.get("default", 0) is None:
                del variant["default"]
        return variant
    out: dict[str, Any] = {k: node[k] for k in _KEEP if k in node}
    if "const" in node:
        out["enum"] = [node["const"]]
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            out[bound.replace("exclusiveM", "m")] = node[bound]
            out[bound] = True
    if out.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        if "properties" in node:
            out["properties"] = {k: _convert(v, defs) for k, v in node["properties"].items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and "properties" not in node:
            value = _convert(extra, defs)
            if value.get("x-kubernetes-preserve-unknown-fields"):
                out.update(_PRESERVE)  # a map of mixed scalars: preserved as a whole
            else:
                out["additionalProperties"] = value
        # additionalProperties: false is implied: a structural schema prunes unknown fields, and
        # `kubectl apply` (strict field validation) reports them.
    if out.get("type") == "array" and "items" in node:
        out["items"] = _convert(node["items"], defs)
    return out


def openapi_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """Structural OpenAPI v3 schema from pydantic's JSON schema (by alias)."""
    return _convert(json_schema, json_schema.get("$defs", {}))


def spec_schema() -> dict[str, Any]:
    return openapi_schema(schema_for_crd())


def _root_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A highly available PostgreSQL cluster with streaming replication.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": {"type": "object", **_PRESERVE},
        },
    }


def crd_manifest() -> dict[str, Any]:
    columns = [
        {"name": "Instances", "type": "integer", "jsonPath": ".spec.instances"},
        {"name": "Version", "type": "integer", "jsonPath": ".spec.postgres.version"},
        {"name": "Replication", "type": "string", "jsonPath": ".spec.replication.mode"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "pgkeel", "app.kubernetes.io/managed-by": "pgkeel"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _root_schema()},
                    # no status subresource: nothing reconciles these objects, so nothing would ever write one
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


_ALLOWED = set(_KEEP) | {
    "properties",
    "required",
    "items",
    "additionalProperties",
    "nullable",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "x-kubernetes-preserve-unknown-fields",
}
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """What the API server would refuse in a CRD schema (the subset of rules our generator can break)."""
    problems: list[str] = []
    here = path or "(root)"
    for key in schema:
        if key not in _ALLOWED:
            problems.append(f"{here}: {key} is not allowed in a structural schema")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    kind = schema.get("type")
    if kind is None and not preserve:
        problems.append(f"{here}: every node needs a type")
    elif kind is not None and kind not in _TYPES:
        problems.append(f"{here}: unknown type {kind!r}")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{here}: properties and additionalProperties are mutually exclusive")
    if isinstance(schema.get("additionalProperties"), bool):
        problems.append(f"{here}: additionalProperties must be a schema, not a boolean")
    for bound in ("exclusiveMinimum", "exclusiveMaximum"):
        if bound in schema and not isinstance(schema[bound], bool):
            problems.append(f"{here}: {bound} must be a boolean in OpenAPI v3")
    if "default" in schema and schema["default"] is None:
        problems.append(f"{here}: a null default is not allowed")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.*")
    return problems
