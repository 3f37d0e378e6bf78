"""Shared fixtures for the manifest tests: cluster documents and lookups by kind/name."""

from __future__ import annotations

from typing import Any

from pgkeel.document import PostgresCluster, parse_cluster

PASSWORDS = {
    "superuser-password": "su-Secret-0123456789abcdef",
    "replication-password": "repl-Secret-0123456789abcdef",
    "api-token": "token-Secret-0123456789abcdef",
}


def cluster(instances: int = 3, **spec: Any) -> PostgresCluster:
    body: dict[str, Any] = {"instances": instances, **spec}
    if instances == 1:
        body.setdefault("replication", {"mode": "async"})
    return parse_cluster(
        {
            "apiVersion": "pgkeel.dev/v1alpha1",
            "kind": "PostgresCluster",
            "metadata": {"name": "pg", "namespace": "db", "labels": {"team": "payments"}},
            "spec": body,
        }
    )


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
