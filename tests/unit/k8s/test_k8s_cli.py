"""`pgkeel render k8s`, `render secrets`, `render certs` and `render crd` as a user runs them."""

from __future__ import annotations

import stat
from pathlib import Path

import kubernetes_validate
import yaml
from cryptography import x509
from typer.testing import CliRunner

from pgkeel.cli import app
from pgkeel.k8s import layout

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "examples" / "cluster.yaml")
runner = CliRunner()


def kinds(text: str) -> list[str]:
    return [d["kind"] for d in yaml.safe_load_all(text) if d]


def test_render_k8s_prints_multi_document_yaml() -> None:
    result = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert "Secret" not in kinds(result.stdout) and kinds(result.stdout)[-1] == "StatefulSet"
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == layout.DEFAULT_IMAGE
    assert "samenet" in result.stderr  # the warning goes to stderr, never into the YAML


def test_render_k8s_options(tmp_path: Path) -> None:
    out = tmp_path / "pg.yaml"
    # --no-secrets is still accepted (scripts written for the old default keep working).
    result = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE, "--image", "registry.local/pg:1", "--no-secrets",
                                 "--no-network-policy", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Secret" not in kinds(text) and "NetworkPolicy" not in kinds(text)
    assert "image: registry.local/pg:1" in text


def test_render_k8s_refuses_an_invalid_document(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: pgkeel.dev/v1alpha1\nkind: PostgresCluster\nmetadata: {name: x}\n"
                   "spec: {instances: 2}\n")
    result = runner.invoke(app, ["render", "k8s", "-f", str(bad)])
    assert result.exit_code == 1
    assert "spec.instances" in result.output


def test_render_crd() -> None:
    result = runner.invoke(app, ["render", "crd"])
    assert result.exit_code == 0, result.output
    (crd,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["spec"]["names"]["kind"] == "PostgresCluster"


def test_render_k8s_twice_is_the_same_output() -> None:
    """Applying `render k8s` again must never change a credential: it holds none, and nothing random."""
    first = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE])
    second = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE])
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    assert "BEGIN" not in first.stdout and "stringData" not in first.stdout


def test_render_k8s_refuses_the_old_secrets_flag() -> None:
    result = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE, "--secrets"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "pgkeel render secrets" in result.stderr


def secrets_of(text: str) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(text) if d}


def test_render_secrets_once_keeps_the_ca_key_on_this_machine(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    result = runner.invoke(app, ["render", "secrets", "-f", EXAMPLE, "--ca-dir", str(ca_dir)])
    assert result.exit_code == 0, result.output
    docs = secrets_of(result.stdout)
    assert set(docs) == {"postgresql-secrets", "postgresql-certs"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, "1.29", strict=True)
    creds = docs["postgresql-secrets"]
    assert creds["immutable"] is True  # an accidental apply of new ones is refused by the API server
    assert set(creds["stringData"]) == set(layout.SECRET_KEYS)
    certs = docs["postgresql-certs"]["stringData"]
    # the 3 members and the pods `kubectl scale` may add, up to 9 (pgkeel.k8s.layout.stateful_set_pods)
    assert set(certs) == {"ca.crt"} | {f"postgresql-{i}.{ext}" for i in range(9) for ext in ("crt", "key")}
    key = (ca_dir / "ca.key").read_text()
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(ca_dir.stat().st_mode) == 0o700
    assert key not in result.stdout and "ca.key" not in result.stdout
    assert certs["ca.crt"] == (ca_dir / "ca.crt").read_text()
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    x509.load_pem_x509_certificate(certs["postgresql-2.crt"].encode()).verify_directly_issued_by(ca)


def test_render_secrets_refuses_a_second_run(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    assert runner.invoke(app, ["render", "secrets", "-f", EXAMPLE, "--ca-dir", str(ca_dir)]).exit_code == 0
    before = (ca_dir / "ca.key").read_bytes(), (ca_dir / "ca.crt").read_bytes()
    again = runner.invoke(app, ["render", "secrets", "-f", EXAMPLE, "--ca-dir", str(ca_dir)])
    assert again.exit_code == 1 and again.stdout == ""
    assert "render certs" in again.stderr and "once" in again.stderr
    assert ((ca_dir / "ca.key").read_bytes(), (ca_dir / "ca.crt").read_bytes()) == before


def test_render_secrets_to_a_file_is_private(tmp_path: Path) -> None:
    out = tmp_path / "secrets.yaml"
    result = runner.invoke(app, ["render", "secrets", "-f", EXAMPLE, "--ca-dir", str(tmp_path / "ca"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "superuser-password" in out.read_text() and result.stdout == ""


def test_render_certs_reissues_with_the_same_ca(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    first = secrets_of(runner.invoke(app, ["render", "secrets", "-f", EXAMPLE, "--ca-dir", str(ca_dir)]).stdout)
    result = runner.invoke(app, ["render", "certs", "-f", EXAMPLE, "--ca-dir", str(ca_dir),
                                 "--cluster-domain", "corp.example"])
    assert result.exit_code == 0, result.output
    (only,) = secrets_of(result.stdout).values()
    assert only["metadata"]["name"] == "postgresql-certs"
    old, new = first["postgresql-certs"]["stringData"], only["stringData"]
    assert new["ca.crt"] == old["ca.crt"] and new["postgresql-0.crt"] != old["postgresql-0.crt"]
    cert = x509.load_pem_x509_certificate(new["postgresql-0.crt"].encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(new["ca.crt"].encode()))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "postgresql-rw.k8s-training.svc.corp.example" in names


def test_render_certs_needs_the_ca(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", "certs", "-f", EXAMPLE, "--ca-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and result.stdout == ""
    assert "--ca-dir" in result.stderr


def test_render_secrets_refuses_a_bad_cluster_domain(tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", "secrets", "-f", EXAMPLE, "--ca-dir", str(tmp_path / "ca"),
                                 "--cluster-domain", "bad domain"])
    assert result.exit_code == 1 and "--cluster-domain" in result.stderr
    assert not (tmp_path / "ca").exists()


def test_render_k8s_yaml_has_no_anchors_or_aliases() -> None:
    """Shared label dicts must be written out in full: `&id001`/`*id001` confuse readers and diffs."""
    result = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE, "--image", "registry.local/pg:1"])
    assert result.exit_code == 0, result.output
    assert "&id" not in result.stdout and "*id" not in result.stdout
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs[0]["metadata"]["labels"] == docs[-1]["metadata"]["labels"]  # the same labels, twice in full


def test_render_k8s_without_image_warns_that_the_default_is_not_published() -> None:
    result = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE])
    assert result.exit_code == 0, result.output
    assert "no --image" in result.stderr and "make image" in result.stderr
    given = runner.invoke(app, ["render", "k8s", "-f", EXAMPLE, "--image", "registry.local/pg:1"])
    assert "no --image" not in given.stderr
