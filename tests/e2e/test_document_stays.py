"""The document lives with the cluster: `up` keeps it, another one is a diffed, explicit step, and a
major version the data directories are not is refused before anything changes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pgkeel.cli import app
from pgkeel.local import LocalCluster

pytestmark = pytest.mark.e2e
runner = CliRunner()


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgkeel-e2e-", dir="/tmp"))
    os.chmod(path, 0o755)  # the agents run as the postgres user
    try:
        yield path
    finally:
        try:
            LocalCluster(path / "cluster").down(purge=True)
        finally:
            shutil.rmtree(path, ignore_errors=True)


def up(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["up", *args])
    return result.exit_code, " ".join(result.output.split())  # rich wraps lines when not on a terminal


def with_spec(source: Path, target: Path, **postgres: object) -> Path:
    doc = yaml.safe_load(source.read_text())
    doc["spec"]["postgres"].update(postgres)
    target.write_text(yaml.safe_dump(doc))
    return target


def test_up_keeps_the_clusters_document_and_refuses_another_without_apply(
        base: Path, document_writer: Callable[..., Path]) -> None:
    original = document_writer(base, mode="async", instances=1)
    cluster_dir = base / "cluster"
    code, out = up("-f", str(original), "--dir", str(cluster_dir), "--timeout", "90")
    assert code == 0, out
    stored = cluster_dir / "cluster.yaml"
    conf = cluster_dir / "etc" / "postgresql.conf"

    # The user changes the cluster's own document; `up` without -f (a restart) uses it, never the example.
    with_spec(stored, stored, parameters={"work_mem": "7MB"})
    changed = stored.read_text()
    code, out = up("--dir", str(cluster_dir))
    assert code == 0, out
    assert stored.read_text() == changed
    assert "work_mem = 7MB" in conf.read_text()

    # What `up` cannot carry out is refused, also when it is an edit of the cluster's own document.
    grown = yaml.safe_load(changed)
    grown["spec"]["instances"] = 3
    stored.write_text(yaml.safe_dump(grown))
    code, out = up("--dir", str(cluster_dir))
    assert code == 1 and "holds members e2e-0 and the document names e2e-0, e2e-1, e2e-2" in out, out
    assert not (cluster_dir / "nodes" / "e2e-1").exists()
    stored.write_text(changed)

    # Another document is shown as a diff and refused; nothing changes.
    code, out = up("-f", str(original), "--dir", str(cluster_dir))
    assert code == 1, out
    assert f"--- {stored}" in out and f"+++ {original}" in out and "- work_mem: 7MB" in out, out
    assert "nothing was changed" in out and "--apply" in out
    assert stored.read_text() == changed and "work_mem = 7MB" in conf.read_text()

    # A major version the data directory is not: refused even with --apply, naming the field and both versions.
    newer = with_spec(original, base / "pg16.yaml", version=16)
    code, out = up("-f", str(newer), "--dir", str(cluster_dir), "--apply")
    assert code == 1, out
    assert "spec.postgres.version: this cluster is PostgreSQL 15" in out and "the document says 16" in out, out
    assert "major upgrades are not supported yet" in out
    assert stored.read_text() == changed

    # With --apply the other document becomes the cluster's.
    code, out = up("-f", str(original), "--dir", str(cluster_dir), "--apply")
    assert code == 0, out
    assert stored.read_text() == original.read_text()
    assert "work_mem = 7MB" not in conf.read_text()


def test_data_of_another_major_is_refused_before_anything_is_written(
        base: Path, document_writer: Callable[..., Path]) -> None:
    """No document kept (e.g. it was deleted), but a data directory is there: its PG_VERSION decides."""
    cluster = LocalCluster(base / "cluster")
    doc = with_spec(document_writer(base), base / "pg16.yaml", version=16)
    data = cluster.layout.node("e2e-0") / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("15\n")
    with pytest.raises(ValueError, match=r"spec.postgres.version: this cluster is PostgreSQL 15 \(.*PG_VERSION\) "
                                         r"and the document says 16: major upgrades are not supported yet"):
        cluster.prepare(doc)
    assert not cluster.layout.document.exists() and not cluster.layout.etc.exists()
