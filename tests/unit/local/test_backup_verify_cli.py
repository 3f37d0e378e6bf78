"""`pgkeel backup verify` on a cluster without spec.backup: one error line that says what to add, nothing written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pgkeel.cli import app
from pgkeel.local import LocalCluster
from pgkeel.local.backups import drill_scratch

ROOT = Path(__file__).resolve().parents[3]


def test_verify_without_spec_backup_fails_with_what_to_add_and_writes_no_result(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path / "cluster")
    local.prepare(ROOT / "examples" / "cluster.yaml")
    assert local.cluster().spec.backup is None
    result = CliRunner().invoke(app, ["backup", "verify", "--dir", str(local.layout.root)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "spec.backup is not set" in result.output
    assert not drill_scratch(local.layout).exists()
