"""Building cluster documents for the pgconf tests."""

from __future__ import annotations

from typing import Any

from pgkeel.document import PostgresCluster, parse_cluster


def cluster(
    *,
    cpu: str = "2",
    memory: str = "4Gi",
    size: str = "20Gi",
    kind: str = "ssd",
    workload: str = "oltp",
    instances: int = 3,
    mode: str | None = None,
    parameters: dict[str, Any] | None = None,
    hba: list[str] | None = None,
    cidrs: list[str] | None = None,
    version: int = 15,
    tls: bool = True,
) -> PostgresCluster:
    spec: dict[str, Any] = {
        "instances": instances,
        "resources": {"cpu": cpu, "memory": memory},
        "storage": {"size": size, "kind": kind},
        "workload": workload,
        "replication": {"mode": mode or ("quorum" if instances > 1 else "async")},
        "postgres": {"version": version, "parameters": parameters or {}, "hba": hba or []},
    }
    if not tls:
        spec["tls"] = {"enabled": False}
    if cidrs:
        spec["network"] = {"allowedCidrs": cidrs}
    return parse_cluster({"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster",
                          "metadata": {"name": "demo"}, "spec": spec})
