"""Fixtures for whole local clusters with real PostgreSQL processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from pgkeel.local import LocalCluster

ROOT = Path(__file__).resolve().parents[2]


def write_document(directory: Path, mode: str = "quorum", instances: int = 3) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"]["name"] = "e2e"
    doc["spec"]["instances"] = instances
    doc["spec"]["resources"] = {"cpu": "1", "memory": "512Mi"}
    doc["spec"]["replication"] = {"mode": mode}  # syncStandbys defaults to n = (instances - 1) / 2
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def document_writer() -> Callable[..., Path]:
    """write_document for tests that lay out a cluster themselves (importing conftest is order-dependent)."""
    return write_document


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _print_logs(cluster: LocalCluster) -> None:
    """A failed test shows the agents' own account of what happened (the files are purged after)."""
    for log in sorted(cluster.layout.root.glob("nodes/*/agent.log")):
        lines = log.read_text(errors="replace").splitlines()
        print(f"\n----- {log.parent.name}/agent.log (last 60 lines)")
        print("\n".join(lines[-60:]))


@pytest.fixture
def make_cluster(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalCluster]]:
    """Start local clusters in fresh directories; stop every process and remove the files afterwards."""
    made: list[tuple[LocalCluster, Path]] = []

    def make(mode: str = "quorum", instances: int = 3) -> LocalCluster:
        base = Path(tempfile.mkdtemp(prefix="pgkeel-e2e-", dir="/tmp"))
        os.chmod(base, 0o755)  # the agents run as the postgres user
        doc = write_document(base, mode, instances)
        cluster = LocalCluster(base / "cluster")
        made.append((cluster, base))
        cluster.up(doc, timeout=90)
        return cluster

    yield make
    failed = getattr(request.node, "rep_call", None)
    for cluster, base in made:
        if failed is not None and failed.failed:
            _print_logs(cluster)
        try:
            cluster.down(purge=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)
