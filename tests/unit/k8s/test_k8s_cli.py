"""`pgkeel render k8s` and `pgkeel render crd` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import yaml
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
    assert "Secret" in kinds(result.stdout) and kinds(result.stdout)[-1] == "StatefulSet"
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == layout.DEFAULT_IMAGE
    assert "samenet" in result.stderr  # the warning goes to stderr, never into the YAML


def test_render_k8s_options(tmp_path: Path) -> None:
    out = tmp_path / "pg.yaml"
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
