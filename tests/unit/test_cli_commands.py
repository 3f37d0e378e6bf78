"""The local-cluster commands as a user meets them: one error line, confirmation, --version, psql arguments.

A cluster directory is laid out by `LocalCluster.prepare` (files only: no agent, no postgres runs).
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgkeel.cli import app
from pgkeel.local import LocalCluster

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
MEMBERS = "postgresql-0, postgresql-1, postgresql-2"


@pytest.fixture
def laid_out(tmp_path: Path) -> LocalCluster:
    local = LocalCluster(tmp_path / "cluster")
    local.prepare(ROOT / "examples" / "cluster.yaml")
    return local


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_version_prints_the_installed_version() -> None:
    assert run("--version") == (0, f"pgkeel {version('pgkeel')}\n")


@pytest.mark.parametrize("command", [
    ["switchover"], ["switchover", "--to", "postgresql-1"], ["failover", "--to", "postgresql-1", "--yes"],
    ["psql"], ["status"],
])
def test_a_missing_cluster_is_one_error_line(tmp_path: Path, command: list[str]) -> None:
    code, output = run(*command, "--dir", str(tmp_path / "none"))
    assert code == 1
    assert output.splitlines() == [f"error: no local cluster in {tmp_path / 'none'}; start one with `pgkeel up`"]


def test_psql_to_an_unknown_member_is_one_line_naming_the_members(laid_out: LocalCluster) -> None:
    code, output = run("psql", "nosuch", "--dir", str(laid_out.layout.root))
    assert code == 1
    assert output.splitlines() == [f"error: unknown member 'nosuch'; members are {MEMBERS}"]


def test_psql_arguments_follow_the_members_dsn(laid_out: LocalCluster) -> None:
    argv = laid_out.psql_argv("postgresql-1", ["-Atc", "select 1"])
    port = laid_out.layout.load_state()["pg_ports"]["postgresql-1"]
    assert Path(argv[0]).name == "psql" and Path(argv[0]).exists()
    assert f"port={port} " in argv[1] and "passfile=" in argv[1]
    assert argv[2:] == ["-Atc", "select 1"]
    assert laid_out.psql_argv(None, [])[1] == laid_out.dsn(True)  # no name: the primary, by host list


def test_down_purge_without_a_terminal_refuses_and_deletes_nothing(laid_out: LocalCluster) -> None:
    code, output = run("down", "--purge", "--dir", str(laid_out.layout.root))
    assert code == 1
    assert "stdin is not a terminal: pass --yes to confirm" in output
    assert f"Delete cluster 'postgresql' in {laid_out.layout.root}" in output
    assert len(output.splitlines()) == 1
    assert laid_out.exists()


def test_down_purge_with_yes_deletes_the_cluster(laid_out: LocalCluster) -> None:
    code, output = run("down", "--purge", "-y", "--dir", str(laid_out.layout.root))
    assert (code, output) == (0, "stopped: nothing was running (data deleted)\n")
    assert not laid_out.layout.root.exists()


@pytest.mark.parametrize("command", [["down"], ["down", "--purge"], ["down", "--purge", "--yes"]])
def test_down_is_idempotent_where_there_is_no_cluster(tmp_path: Path, command: list[str]) -> None:
    """A second `down --purge` (or one on a directory never used) is not an error and creates nothing."""
    code, output = run(*command, "--dir", str(tmp_path / "gone"))
    assert (code, output) == (0, f"no local cluster in {tmp_path / 'gone'}: nothing to stop\n")
    assert not (tmp_path / "gone").exists()


def test_down_without_purge_asks_nothing(laid_out: LocalCluster) -> None:
    assert run("down", "--dir", str(laid_out.layout.root)) == (0, "stopped: nothing was running\n")
    assert laid_out.exists()


def test_failover_without_a_terminal_refuses_before_requesting_anything(laid_out: LocalCluster) -> None:
    code, output = run("failover", "--to", "postgresql-1", "--force", "--dir", str(laid_out.layout.root))
    assert code == 1
    assert output.startswith("error: Promote postgresql-1 (no leader holds a lease)? With --force")
    assert "pass --yes to confirm" in output


def test_switchover_and_failover_with_no_agent_say_so_once(laid_out: LocalCluster) -> None:
    for command in (["switchover"], ["failover", "--to", "postgresql-1", "--yes"]):
        code, output = run(*command, "--dir", str(laid_out.layout.root))
        assert (code, output.splitlines()) == (1, ["error: no agent is running"])


def test_psql_off_the_path_is_taken_from_the_clusters_bindir(
    laid_out: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = laid_out.cluster().spec.postgres
    bindir = Path(spec.bindir or f"/usr/lib/postgresql/{spec.version}/bin")
    if not (bindir / "psql").exists():
        pytest.skip(f"no psql in {bindir}")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert laid_out.psql_argv("postgresql-0", [])[0] == str(bindir / "psql")
