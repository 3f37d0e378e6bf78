"""`validate` as a user meets it: every error in one pass, did-you-mean for fields, YAML errors that name the
file and line, and preloaded libraries checked where the binaries are."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgkeel.cli import app
from pgkeel.document import check_cluster, check_cluster_file
from pgkeel.pgconf import validate_document

runner = CliRunner()
PG15_LIB = Path("/usr/lib/postgresql/15/lib")
needs_pg15 = pytest.mark.skipif(not (PG15_LIB / "pg_stat_statements.so").exists(), reason="PostgreSQL 15 not here")
HEAD = "apiVersion: pgkeel.dev/v1alpha1\nkind: PostgresCluster\nmetadata: {name: x}\n"


def doc(**spec: object) -> dict:
    return {"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "pg"}, "spec": spec}


def validate(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    """`pgkeel validate`'s exit code, and the problems it lists (as lines, unwrapped)."""
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["validate", "-f", str(path)])
    problems = validate_document(check_cluster_file(path), installed=True)
    printed = " ".join(result.output.split())  # rich wraps long lines when not on a terminal
    assert all(" ".join(p.split()) in printed for p in problems), result.output
    assert f"{len(problems)} problem(s)" in printed or not problems, result.output
    return result.exit_code, problems


def test_document_and_parameter_errors_are_listed_in_one_pass(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, HEAD + (
        "spec:\n  instances: 4\n  workload: nope\n"
        "  postgres: {parameters: {shared_bufers: 1GB, wal_level: minimal}, hba: ['host all all 0.0.0.0/0 trust']}\n"
    ))
    assert code == 1
    found = {line.split(":")[0] for line in lines}
    assert found == {"spec.instances", "spec.workload", "spec.postgres.parameters.shared_bufers",
                     "spec.postgres.parameters.wal_level", "spec.postgres.hba[0]"}, lines
    assert any("did you mean shared_buffers?" in line for line in lines)


def test_a_rule_pydantic_skipped_behind_a_broken_field_is_reported_too() -> None:
    """workload is broken, so ClusterSpec's cross-field rule (quorum needs 3 instances) never ran in the first pass."""
    checked = check_cluster(doc(workload="nope", instances=1))
    assert [e.split(":")[0] for e in checked.errors] == ["spec.workload", "spec"]
    assert "quorum needs at least 3 instances" in checked.errors[1]


def test_a_default_standing_in_for_a_broken_field_causes_no_error_of_its_own() -> None:
    """instances: 4 is replaced by the default 3 for checking; syncStandbys 5 > 2 would be an artefact of that."""
    checked = check_cluster(doc(instances=4, replication={"mode": "quorum", "syncStandbys": 5}))
    assert [e.split(":")[0] for e in checked.errors] == ["spec.instances"]


def test_parameters_are_not_checked_against_a_version_that_is_not_the_documents(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, HEAD + "spec:\n  postgres: {version: 12, parameters: {bogus_name: 1}}\n")
    assert code == 1 and len(lines) == 1, lines  # the version only: no catalogue to check names against
    assert "spec.postgres.version: PostgreSQL 12 is not supported" in lines[0]


def test_a_value_of_no_parameter_type_is_one_error_not_one_per_type() -> None:
    checked = check_cluster(doc(postgres={"parameters": {"work_mem": [1, 2]}}))
    assert checked.errors == ["spec.postgres.parameters.work_mem: must be a string, a number or a boolean; got [1, 2]"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"postgres": {"versoin": 15}}, "spec.postgres.versoin: unknown field; did you mean version?"),
        ({"storage": {"storageclass": "fast"}}, "spec.storage.storageclass: unknown field; did you mean storageClass?"),
        ({"storage": {"storage_class": "fast"}}, None),  # snake_case is accepted as well
        ({"replicas": 3}, "spec.replicas: unknown field; did you mean instances?"),
        ({"postgresql": {"version": 15}}, "spec.postgresql: unknown field; did you mean postgres?"),
        ({"failover": {"ttl": 3}}, "spec.failover.ttl: unknown field; did you mean ttlSeconds?"),
        ({"zzz": 1}, "spec.zzz: unknown field; the fields here are instances, postgres, resources"),
    ],
)
def test_unknown_fields_get_a_did_you_mean(spec: dict, expected: str | None) -> None:
    errors = check_cluster(doc(**spec)).errors
    if expected is None:
        assert errors == []
    else:
        assert len(errors) == 1 and errors[0].startswith(expected), errors


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (HEAD + "spec: {\n  instances: 3\n", "not valid YAML at line 6, column 1: expected ',' or '}'"),
        (HEAD + "spec:\n\tinstances: 3\n", "not valid YAML at line 5, column 1: found character '\\t'"),
    ],
)
def test_yaml_errors_name_the_file_and_the_line(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    (error,) = check_cluster_file(path).errors
    assert error.startswith(f"{path}: {where}"), error
    assert "<unicode string>" not in error and "\n" not in error


@needs_pg15
def test_a_preloaded_library_that_is_not_installed_is_an_error_naming_it_and_where_it_was_looked_for(
        tmp_path: Path) -> None:
    code, lines = validate(tmp_path, HEAD + (
        "spec:\n  postgres:\n    version: 15\n"
        "    parameters: {shared_preload_libraries: 'auto_explain, pg_stat_statments'}\n"
    ))
    assert code == 1, lines
    (error,) = lines
    assert error.startswith("spec.postgres.parameters.shared_preload_libraries: library 'pg_stat_statments' is "
                            "not installed for PostgreSQL 15"), error
    assert str(PG15_LIB) in error and "did you mean pg_stat_statements?" in error


@needs_pg15
def test_installed_libraries_are_valid(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, HEAD + (
        "spec:\n  postgres: {version: 15, parameters: {shared_preload_libraries: '\"pg_stat_statements\",auto_explain',"
        " session_preload_libraries: '$libdir/auto_explain'}}\n"
    ))
    assert code == 0, lines


def test_without_the_binaries_at_hand_libraries_are_not_judged(tmp_path: Path) -> None:
    """Rendering for an image on a laptop: the libraries that count are in the image, not here."""
    code, lines = validate(tmp_path, HEAD + (
        f"spec:\n  postgres: {{bindir: {tmp_path / 'nowhere'}, parameters: {{shared_preload_libraries: vectorz}}}}\n"
    ))
    assert code == 0, lines
