"""spec.backup on Kubernetes: pgbackrest.conf in the ConfigMap without a secret, the secrets from the backup Secret
as pgBackRest's variables, a volume repository only as a claim every pod mounts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from k8s_helpers import PASSWORDS, by_kind, cluster, one

from pgkeel.backup.secret_env import env_name
from pgkeel.document import PostgresCluster
from pgkeel.k8s import layout
from pgkeel.k8s.manifests import config_data, dump_yaml, render_manifests
from pgkeel.k8s.secrets import render_secrets

S3_KEY, S3_SECRET, PASSPHRASE = "AKIA-k8s-test-0123", "s3-Secret-0123456789abcdef", "cipher-Secret-0123456789abcdef"
SHARED = {"volume": {"path": "/var/lib/pgbackrest", "claimName": "pg-backups"}}


def _private(path: Path, text: str) -> str:
    path.write_text(text)
    os.chmod(path, 0o600)
    return str(path)


def _s3_and_volume(tmp_path: Path, encrypted: bool = True) -> PostgresCluster:
    creds = _private(tmp_path / "s3", f"accessKeyId={S3_KEY}\nsecretAccessKey={S3_SECRET}\n")
    backup: dict[str, Any] = {"repositories": [
        SHARED, {"s3": {"endpoint": "s3.example.test", "bucket": "b", "credentialsFile": creds}}]}
    if encrypted:
        backup["encryption"] = {"passphraseFile": _private(tmp_path / "pass", PASSPHRASE + "\n")}
    return cluster(3, backup=backup, tls={"enabled": False})  # no CA needed for render_secrets


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("version", ["1.29", kubernetes_validate.latest_version()])
def test_backup_manifests_validate_strictly(tmp_path: Path, version: str) -> None:
    c = _s3_and_volume(tmp_path)
    for doc in [*render_secrets(c, None, credentials=PASSWORDS), *render_manifests(c)]:
        kubernetes_validate.validate(doc, version, strict=True)


def test_pgbackrest_conf_is_beside_postgresql_conf_and_holds_no_secret(tmp_path: Path) -> None:
    c = _s3_and_volume(tmp_path)
    conf = config_data(c)[layout.PGBACKREST_KEY]
    assert "repo1-type=posix" in conf and "repo1-path=/var/lib/pgbackrest" in conf and "repo2-type=s3" in conf
    assert "repo2-cipher-type=aes-256-cbc" in conf and f"log-path={layout.BACKUP_LOG_DIR}" in conf
    assert "s3-key" not in conf and "cipher-pass" not in conf
    printed = dump_yaml(render_manifests(c))  # everything `render k8s` prints
    for secret in (S3_KEY, S3_SECRET, PASSPHRASE):
        assert secret not in printed


def test_the_secrets_reach_the_container_as_pgbackrest_variables_from_the_backup_secret(tmp_path: Path) -> None:
    c = _s3_and_volume(tmp_path)
    secret = one(render_secrets(c, None, credentials=PASSWORDS), "Secret", "pg" + layout.BACKUP_SECRET_SUFFIX)
    assert secret["stringData"] == {"repo1-cipher-pass": PASSPHRASE, "repo2-s3-key": S3_KEY,
                                    "repo2-s3-key-secret": S3_SECRET, "repo2-cipher-pass": PASSPHRASE}
    assert "immutable" not in secret  # rotated keys are applied again
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in _container(render_manifests(c))["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {env_name(key): {"name": "pg-backup", "key": key} for key in secret["stringData"]}
    assert "PGBACKREST_REPO2_S3_KEY_SECRET" in refs and "PGBACKREST_REPO1_CIPHER_PASS" in refs


def test_a_volume_repository_is_its_claim_mounted_at_its_path_in_every_pod(tmp_path: Path) -> None:
    docs = render_manifests(cluster(3, backup={"repositories": [SHARED]}))
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    assert {"name": "backup-repo1", "persistentVolumeClaim": {"claimName": "pg-backups"}} in pod["volumes"]
    assert {"name": "backup-repo1", "mountPath": "/var/lib/pgbackrest"} in _container(docs)["volumeMounts"]
    assert not any("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in _container(docs)["env"])
    plain = cluster(3, backup={"repositories": [SHARED]}, tls={"enabled": False})
    assert len(by_kind(render_secrets(plain, None, credentials=PASSWORDS), "Secret")) == 1  # nothing secret


def test_a_volume_repository_without_a_claim_is_refused_naming_the_field_and_the_fix() -> None:
    local_only = {"volume": {"path": "/var/lib/pgbackrest"}}
    with pytest.raises(ValueError, match=r"spec\.backup\.repositories\[1\]\.volume\.claimName: .*ReadWriteMany "
                                         r"PersistentVolumeClaim, or use an s3 repository"):
        render_manifests(cluster(3, backup={"repositories": [SHARED, local_only]}))


def test_render_k8s_reads_no_secret_file() -> None:
    """The manifests come from the document alone: the key files live on the operator's machine, for `render
    secrets` only."""
    c = cluster(3, backup={"repositories": [{"s3": {"endpoint": "s3.example.test", "bucket": "b",
                                                    "credentialsFile": "/nonexistent/s3"}}]})
    assert "repo1-type=s3" in config_data(c)[layout.PGBACKREST_KEY]


def test_render_secrets_and_backup_secret_read_the_key_files_and_name_a_missing_one(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from pgkeel.cli import app

    c = _s3_and_volume(tmp_path)
    doc = tmp_path / "cluster.yaml"
    body = c.model_dump(mode="json", by_alias=True)
    body["spec"]["tls"]["enabled"] = True  # `render secrets` makes a CA: a missing key file must stop it before
    doc.write_text(yaml.safe_dump(body))
    runner = CliRunner()
    result = runner.invoke(app, ["render", "backup-secret", "-f", str(doc)])
    assert result.exit_code == 0, result.output
    (secret,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert secret["metadata"]["name"] == "pg-backup" and secret["stringData"]["repo2-s3-key"] == S3_KEY
    secrets = runner.invoke(app, ["render", "secrets", "-f", str(doc), "--ca-dir", str(tmp_path / "ca")])
    assert secrets.exit_code == 0, secrets.output
    assert "pg-backup" in [d["metadata"]["name"] for d in yaml.safe_load_all(secrets.stdout) if d]
    (tmp_path / "pass").unlink()
    missing = runner.invoke(app, ["render", "secrets", "-f", str(doc), "--ca-dir", str(tmp_path / "ca2")])
    assert missing.exit_code != 0 and "spec.backup.encryption.passphraseFile" in missing.output
    assert not (tmp_path / "ca2").exists()  # refused before a CA was made
