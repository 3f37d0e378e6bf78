"""`pgkeel validate / render config|k8s|secrets / explain` on hostile documents, run in-process: exit 1, a clear list
of errors, never a traceback; and when a hostile-looking document is valid, no smuggled line in the files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pgkeel.cli import app

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()
HEAD = "apiVersion: pgkeel.dev/v1alpha1\nkind: PostgresCluster\nmetadata: {name: x}\n"

HOSTILE = {
    "newline in a parameter value": HEAD + "spec:\n  postgres:\n    parameters:\n"
    "      application_name: \"a'\\ninclude = '/etc/passwd'\"\n",
    "newline after an extension name": HEAD + "spec:\n  postgres:\n    parameters: {\"x.y\\n\": 1}\n",
    "two hba rules in one": HEAD + "spec:\n  postgres:\n    hba: [\"host all all 10.0.0.0/8 scram-sha-256\\n"
    "host all all 0.0.0.0/0 trust\"]\n",
    "hba include": HEAD + "spec:\n  postgres:\n    hba: [\"include /etc/passwd\"]\n",
    "huge numbers": HEAD + "spec:\n  instances: 1000000000000000000000000000000\n  postgres:\n"
    "    version: 1e400\n    parameters: {work_mem: 1e308GB, shared_buffers: -99999999999999999999}\n",
    "nan and inf": HEAD + "spec:\n  failover: {ttlSeconds: .nan, loopWaitSeconds: .inf}\n",
    "wrong types everywhere": HEAD + "spec:\n  instances: [1]\n  postgres: []\n  resources: 5\n"
    "  network: {allowedCidrs: {a: b}}\n",
    "unicode and control keys": HEAD + "spec:\n  \"\\u202eevil\": 1\n  \"a\\nb\": 2\n  \"\\0\": 3\n",
    "not a mapping": "- just\n- a list\n",
    "not YAML": "{{{: [\n",
    "empty": "",
    "python object tag": "!!python/object/apply:os.system ['echo pwned']\n",
    "alias bomb": HEAD + "x:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  {c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    + "spec:\n  instances: *i\n",
    "quantity with a newline": HEAD + "spec:\n  resources: {cpu: \"2\\n\", memory: \"4Gi\\n\"}\n",
    "name with a newline": "apiVersion: pgkeel.dev/v1alpha1\nkind: PostgresCluster\nmetadata: {name: \"pg\\n\"}\n",
    "md5 everywhere": HEAD + "spec:\n  postgres:\n    parameters: {password_encryption: md5}\n"
    "    hba: [\"host all all 10.0.0.0/8 md5\"]\n",
}


@pytest.mark.parametrize("what", sorted(HOSTILE))
@pytest.mark.parametrize("command", [["validate"], ["explain", "--json"], ["render", "config", "-o", "OUT"],
                                     ["render", "k8s"], ["render", "secrets", "--ca-dir", "OUT"]])
def test_hostile_documents_exit_1_without_a_traceback(tmp_path: Path, what: str, command: list[str]) -> None:
    doc = tmp_path / "doc.yaml"
    doc.write_text(HOSTILE[what], encoding="utf-8")
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command] + ["-f", str(doc)]
    result = runner.invoke(app, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 1, (what, output)
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "problem(s)" in output
    assert not (tmp_path / "out").exists(), "files written for a refused document"
    assert len(output) < 50_000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_text_in_validate_exits_cleanly(tmp_path: Path, text: str) -> None:
    doc = tmp_path / "doc.yaml"
    doc.write_text(HEAD + text, encoding="utf-8", errors="surrogatepass")
    result = runner.invoke(app, ["validate", "-f", str(doc)])
    assert result.exit_code in (0, 1)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def test_a_valid_document_with_hostile_looking_strings_renders_only_what_was_asked(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"]["labels"] = {"app": "x\ninclude = '/etc/passwd'"}
    doc["spec"]["storage"]["storageClass"] = "fast\nfsync = off"
    doc["spec"]["postgres"]["parameters"] = {"application_name": "it's # not a comment \\",
                                             "pg_stat_statements.track": "all' fsync = 'off"}
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = runner.invoke(app, ["render", "config", "-f", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    conf = (tmp_path / "out" / "postgresql.conf").read_text()
    settings_lines = [line for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    assert not any(line.startswith(("include", "fsync")) for line in settings_lines)
    assert "application_name = 'it''s # not a comment \\\\'" in conf
    assert "pg_stat_statements.track = 'all'' fsync = ''off'" in conf
    assert "/etc/passwd" not in conf and "fast" not in conf
