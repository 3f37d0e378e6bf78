"""The s3 lines of pgbackrest.conf, and what a repository failure is reported as.

pgBackRest 2.45 wants the endpoint's host in repo-s3-endpoint and its port apart in repo-storage-port;
the integration test (tests/integration/backup/test_s3_repository.py) proves these lines against a server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pgkeel.backup import BackupError, ConfPaths, parse_info, render_conf
from pgkeel.backup.pgbackrest import explain
from pgkeel.document import SpecError, parse_cluster
from pgkeel.document.backup import BackupSpec


def _backup(tmp_path: Path, **s3: Any) -> BackupSpec:
    credentials = tmp_path / "s3.credentials"
    credentials.write_text("accessKeyId=AKIAEXAMPLE\nsecretAccessKey=wJalrXUtnFEMI/EXAMPLEKEY\n")
    credentials.chmod(0o600)
    repo = {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "backups", "credentialsFile": str(credentials), **s3}
    cluster = parse_cluster({"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "db"},
                             "spec": {"backup": {"repositories": [{"s3": repo}]}}})
    assert cluster.spec.backup is not None
    return cluster.spec.backup


def _repo_lines(tmp_path: Path, **s3: Any) -> list[str]:
    text = render_conf("db", _backup(tmp_path, **s3), ConfPaths(tmp_path / "log", tmp_path / "lock"), 2**30)
    return [line for line in text.splitlines() if line.startswith("repo1-")]


def test_an_endpoint_with_a_port_renders_the_host_and_the_port_apart(tmp_path: Path) -> None:
    lines = _repo_lines(tmp_path, endpoint="minio.internal:9000", uriStyle="path", caFile="/etc/pgkeel/s3-ca.crt",
                        region="eu-central-1", path="/db")
    assert lines[:6] == ["repo1-type=s3", "repo1-path=/db", "repo1-s3-endpoint=minio.internal",
                         "repo1-s3-bucket=backups", "repo1-s3-region=eu-central-1", "repo1-s3-uri-style=path"]
    assert "repo1-storage-port=9000" in lines
    assert "repo1-storage-ca-file=/etc/pgkeel/s3-ca.crt" in lines
    assert not any("verify-tls" in line for line in lines)  # verification is never turned off


def test_an_endpoint_without_a_port_keeps_https_default_and_the_system_cas(tmp_path: Path) -> None:
    lines = _repo_lines(tmp_path)
    assert "repo1-s3-endpoint=s3.eu-west-1.amazonaws.com" in lines and "repo1-s3-uri-style=host" in lines
    assert not any(line.startswith(("repo1-storage-port", "repo1-storage-ca-file")) for line in lines)


def test_the_keys_come_from_the_credentials_file_into_the_conf_only(tmp_path: Path) -> None:
    lines = _repo_lines(tmp_path)
    assert "repo1-s3-key=AKIAEXAMPLE" in lines and "repo1-s3-key-secret=wJalrXUtnFEMI/EXAMPLEKEY" in lines


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("https://s3.example.com", r"host\[:port\] only"),
        ("s3.example.com:", "port must be a number"),
        ("s3.example.com:99999", "port must be a number"),
        ("s3.example.com:http", "port must be a number"),
        ("[::1]:9000", "no IPv6 address"),
        (":9000", "a host name"),
    ],
)
def test_a_bad_endpoint_is_refused_naming_the_field(tmp_path: Path, endpoint: str, message: str) -> None:
    with pytest.raises(SpecError, match=rf"s3.endpoint: .*{message}"):
        _backup(tmp_path, endpoint=endpoint)


@pytest.mark.parametrize(
    ("output", "meaning"),
    [
        ("ERROR: [095]: unable to verify certificate presented by 'localhost:9000': [20] unable to get local issuer "
         "certificate", "TLS verification"),
        ("ERROR: [095]: unable to find hostname '10.0.0.5' in certificate common name or subject alternative names",
         "TLS verification"),
        ("ERROR: [039]: HTTP request failed with 403 (Forbidden):", "refused the credentials"),
        ("[ProtocolError] HTTP request failed with 403 (Forbidden): <Code>SignatureDoesNotMatch</Code>",
         "refused the credentials"),
        ("ERROR: [049]: unable to connect to 'localhost:9000': [111] Connection refused", "could not be reached"),
        ("ERROR: [049]: unable to get address for 's3.nowhere.invalid': [-2] Name or service not known",
         "could not be reached"),
    ],
)
def test_repository_failures_are_explained(output: str, meaning: str) -> None:
    assert meaning in (explain(output) or "")


def test_an_unrelated_failure_is_not_explained_as_a_repository_one() -> None:
    assert explain("ERROR: [028]: backup and archive info files exist but do not match the database") is None


def test_info_that_could_not_read_the_repository_raises_instead_of_listing_no_backups() -> None:
    entry = {"name": "db", "archive": [], "backup": [], "db": [], "status": {"code": 99, "message": "other"},
             "repo": [{"key": 1, "cipher": "none", "status": {"code": 99, "message": (
                 "[HostConnectError] unable to connect to 'localhost:9000': [111] Connection refused")}}]}
    with pytest.raises(BackupError, match=r"repo1 could not be read: the repository could not be reached: "):
        parse_info(json.dumps([entry]), "db")
    entry["repo"] = [{"key": 1, "cipher": "none", "status": {"code": 1, "message": "missing stanza path"}}]
    assert parse_info(json.dumps([entry]), "db").backups == ()  # a new repository is not an error
