"""The configuration commands as a user runs them: validate, render config, explain."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pgkeel.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_validate_accepts_the_examples() -> None:
    for name in ("cluster.yaml", "minimal.yaml"):
        result = runner.invoke(app, ["validate", "-f", str(ROOT / "examples" / name)])
        assert result.exit_code == 0, result.output
        assert "valid" in result.output


def test_validate_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: pgkeel.dev/v1alpha1\nkind: PostgresCluster\nmetadata: {name: x}\n"
        "spec:\n  instances: 2\n  workload: nope\n"
    )
    result = runner.invoke(app, ["validate", "-f", str(bad)])
    assert result.exit_code == 1
    assert "spec.instances: must be odd" in result.output
    assert "spec.workload" in result.output
    assert "Traceback" not in result.output


def test_validate_reports_parameter_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: pgkeel.dev/v1alpha1\nkind: PostgresCluster\nmetadata: {name: x}\n"
        "spec:\n  postgres: {parameters: {shared_bufers: 1GB, wal_level: minimal}}\n"
    )
    result = runner.invoke(app, ["validate", "-f", str(bad)])
    assert result.exit_code == 1
    assert "shared_buffers" in result.output  # the suggestion
    assert "wal_level" in result.output


def test_render_config_writes_both_files(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["render", "config", "-f", str(ROOT / "examples" / "cluster.yaml"), "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    conf = (tmp_path / "postgresql.conf").read_text()
    hba = (tmp_path / "pg_hba.conf").read_text()
    assert "hba_file = '/etc/postgresql/pg_hba.conf'" in conf
    assert "wal_log_hints = on" in conf
    assert "scram-sha-256" in hba and "reject" in hba
    assert "trust" not in hba.replace("# ", "")


def test_explain_json_has_exactly_the_five_keys() -> None:
    result = runner.invoke(app, ["explain", "-f", str(ROOT / "examples" / "cluster.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and all(set(r) == {"name", "value", "source", "reason", "context"} for r in rows)
    assert {r["source"] for r in rows} <= {"required", "tuned", "default", "user"}
    assert {r["context"] for r in rows} <= {"restart", "reload"}
    by_name = {r["name"]: r for r in rows}
    assert by_name["shared_buffers"]["value"] == "1GB" and by_name["shared_buffers"]["source"] == "tuned"


def test_cli_fault_help_names_every_lab_fault() -> None:
    from pgkeel.cli import FAULT_HELP
    from pgkeel.lab.faults import FAULTS

    assert all(fault in FAULT_HELP for fault in FAULTS), FAULT_HELP
