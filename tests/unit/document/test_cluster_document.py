"""The cluster document: defaults, quantities, and one clear error per bad field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkeel.document import SpecError, load_cluster, parse_bytes, parse_cluster, parse_cpu_millis

ROOT = Path(__file__).resolve().parents[3]


def doc(**spec: object) -> dict:
    return {"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "pg"}, "spec": spec}


def errors_of(data: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_cluster(data)
    return info.value.errors


def test_examples_load() -> None:
    seed = load_cluster(ROOT / "examples" / "cluster.yaml")
    assert (seed.name, seed.metadata.namespace, seed.spec.instances) == ("postgresql", "k8s-training", 3)
    assert seed.member_names() == ["postgresql-0", "postgresql-1", "postgresql-2"]
    minimal = load_cluster(ROOT / "examples" / "minimal.yaml")
    assert minimal.spec.replication.mode == "quorum" and minimal.spec.instances == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512Mi", 512 * 2**20), ("4Gi", 4 * 2**30), ("1Ti", 2**40), ("1G", 10**9), ("100", 100), ("1.5Gi", 3 * 2**29)],
)
def test_memory_quantities(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("2", 2000), ("500m", 500), ("0.5", 500), ("16", 16000)])
def test_cpu_quantities(text: str, expected: int) -> None:
    assert parse_cpu_millis(text) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            doc(instances=2),
            "spec.instances: must be odd (1, 3, 5, …) so that a majority survives the loss of n nodes; got 2",
        ),
        (doc(instances=11), "spec.instances: must be between 1 and 9"),
        (doc(resources={"memory": "4GB"}), "spec.resources.memory: expected a quantity such as 512Mi, 4Gi or 500m"),
        (doc(resources={"cpu": "two"}), "spec.resources.cpu: expected a quantity"),
        (doc(storage={"kind": "nvme"}), "spec.storage.kind: must be one of 'ssd' or 'hdd'"),
        (doc(workload="batch"), "spec.workload: must be one of"),
        (
            doc(postgres={"version": 12}),
            "spec.postgres.version: PostgreSQL 12 is not supported: pgkeel needs 13 or newer",
        ),
        (doc(instances=1), "quorum needs at least 3 instances"),
        (doc(replication={"mode": "quorum", "syncStandbys": 3}), "replication.syncStandbys: at most instances - 1 = 2"),
        (doc(failover={"ttlSeconds": 1.0, "loopWaitSeconds": 0.5}), "ttlSeconds must exceed 2 × loopWaitSeconds"),
        (doc(network={"allowedCidrs": ["10.0.0.0"]}), "needs a prefix length, e.g. 10.0.0.0/32"),
        (doc(network={"allowedCidrs": ["not-a-net"]}), "is not a CIDR"),
        (doc(users={"superuser": "pg", "replication": "pg"}), "must differ from the superuser"),
        (doc(instancez=3), "spec.instancez: unknown field"),
        ({"kind": "PostgresCluster", "metadata": {"name": "x"}}, "apiVersion: required field is missing"),
        (doc() | {"metadata": {"name": "Bad_Name"}}, "metadata.name: must be a DNS-1123 label"),
        ([1, 2], "(document): must be a mapping"),
    ],
)
def test_bad_documents_name_the_field_and_the_fix(data: object, expected: str) -> None:
    errors = errors_of(data)
    assert any(expected in e for e in errors), errors


def test_every_error_is_listed_at_once() -> None:
    errors = errors_of(doc(instances=4, workload="x", storage={"size": "lots"}))
    assert len(errors) == 3
    assert [e.split(":")[0] for e in errors] == ["spec.instances", "spec.storage.size", "spec.workload"]


@pytest.mark.parametrize(("instances", "k"), [(1, 0), (3, 1), (5, 2), (7, 3), (9, 4)])
def test_sync_standbys_defaults_to_n_so_any_n_failures_are_survivable(instances: int, k: int) -> None:
    mode = "async" if instances == 1 else "quorum"
    spec = parse_cluster(doc(instances=instances, replication={"mode": mode})).spec
    assert spec.sync_standbys == k and spec.tolerated_failures == (instances - 1) // 2
    assert spec.warnings() == []


def test_a_smaller_sync_standbys_is_allowed_with_a_warning_naming_what_it_gives_up() -> None:
    spec = parse_cluster(doc(instances=5, replication={"mode": "quorum", "syncStandbys": 1})).spec
    assert spec.sync_standbys == 1
    (warning,) = spec.warnings()
    assert warning.startswith("replication.syncStandbys: 1 < n = 2") and "syncStandbys: 2" in warning


def test_ha_settings_come_from_the_document_once() -> None:
    from pgkeel.ha.settings import HASettings, Mode

    cluster = parse_cluster(doc(instances=5, failover={"ttlSeconds": 6}, replication={"mode": "async"}))
    settings = HASettings.from_document(cluster)
    assert (settings.ttl, settings.mode, settings.fence_deadline, settings.member_ttl) == (6.0, Mode.ASYNC, 4.5, 18.0)
    with pytest.raises(ValueError, match="mode"):
        HASettings.model_validate({"mode": "quorom"})  # a typo is an error, never silently async
