"""One member per machine: the bundles `secrets init` makes, the agent configuration `node run` derives,
and the systemd unit `render systemd` prints — all from one document."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from typer.testing import CliRunner

from pgkeel.cli import app
from pgkeel.document import PostgresCluster, parse_cluster
from pgkeel.node.bundle import Bundle, BundleError, init_secrets
from pgkeel.node.config import NodeError, NodePaths, node_config, store_url
from pgkeel.node.systemd import systemd_unit

runner = CliRunner()
DOC = {
    "apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "shop"},
    "spec": {
        "members": [{"name": "db1", "host": "198.18.0.11"}, {"name": "db2", "host": "db2.example.net", "pgPort": 5433},
                    {"name": "db3", "host": "198.18.0.13", "apiPort": 9008}],
        "store": {"etcd": {"endpoints": ["https://198.18.0.11:2379", "https://198.18.0.12:2379"],
                           "tls": {"ca": "/etc/pgkeel/etcd-ca.crt"},
                           "auth": {"user": "pgkeel", "passwordFile": "/etc/pgkeel/shop/etcd-password"}}},
    },
}


@pytest.fixture
def cluster() -> PostgresCluster:
    return parse_cluster(DOC)


def test_secrets_init_makes_one_private_bundle_per_member_and_keeps_the_ca_key_home(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    out = tmp_path / "secrets"
    bundles = init_secrets(cluster, out)
    assert [b.member for b in bundles] == ["db1", "db2", "db3"]
    assert sorted(p.name for p in (out / "ca").iterdir()) == ["ca.crt", "ca.key"]
    for bundle in bundles:
        assert bundle.missing() == [] and not (bundle.directory / "ca.key").exists()
        assert stat.S_IMODE(bundle.directory.stat().st_mode) == 0o700
        assert {stat.S_IMODE(f.stat().st_mode) for f in bundle.directory.iterdir()} == {0o600}
    cert = x509.load_pem_x509_certificate(bundles[1].cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"db2.example.net", "db2"}
    same = {b.token_file.read_text() for b in bundles}
    assert len(same) == 1 and len(same.pop().strip()) >= 32  # one cluster token, on every member


def test_secrets_init_refuses_to_replace_what_exists_and_changes_nothing(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    out = tmp_path / "secrets"
    init_secrets(cluster, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(BundleError, match="already exist"):
        init_secrets(cluster, out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_node_config_is_derived_from_the_member_entry_the_store_and_the_bundle(
    cluster: PostgresCluster, tmp_path: Path
) -> None:
    init_secrets(cluster, tmp_path / "s")
    paths = NodePaths(tmp_path / "state")
    config = node_config(cluster, "db2", paths, Bundle(tmp_path / "s" / "db2", "db2"))
    assert (config.name, config.scope, config.members) == ("db2", "shop", ["db1", "db2", "db3"])
    assert config.dcs_url == "etcds://198.18.0.11:2379,198.18.0.12:2379"
    assert config.etcd is not None and config.etcd.user == "pgkeel"
    assert str(config.etcd.ca_file) == "/etc/pgkeel/etcd-ca.crt"
    assert (config.api_host, config.api_port, config.pg_host, config.pg_port) == (
        "db2.example.net", 8008, "db2.example.net", 5433)
    assert config.api_url == "https://db2.example.net:8008"  # beyond loopback only with TLS
    assert config.api_cert_file == tmp_path / "s" / "db2" / "db2.crt"
    assert config.datadir == paths.datadir and config.tls_dir == paths.base / "tls"
    assert config.tls_names == ["db2.example.net", "db2"]


def test_node_config_names_what_is_missing(cluster: PostgresCluster, tmp_path: Path) -> None:
    paths = NodePaths(tmp_path / "state")
    with pytest.raises(NodeError, match=r"--member db9: not in spec.members of shop \(db1, db2, db3\)"):
        node_config(cluster, "db9", paths, Bundle(tmp_path, "db9"))
    with pytest.raises(BundleError, match=r"lacks ca\.crt, db1\.crt, db1\.key"):
        node_config(cluster, "db1", paths, Bundle(tmp_path / "empty", "db1"))
    local = parse_cluster({**DOC, "spec": {"members": DOC["spec"]["members"]}})
    with pytest.raises(NodeError, match=r"spec\.store\.etcd: `node run` needs a store"):
        store_url(local)


def test_the_systemd_unit_runs_the_member_as_postgres_and_lets_the_agent_stop_postgres(
    cluster: PostgresCluster,
) -> None:
    unit = systemd_unit(cluster, "db3", Path("/etc/pgkeel/shop/cluster.yaml"))
    lines = set(unit.splitlines())
    assert {"User=postgres", "KillMode=mixed", "Restart=on-failure", "RestartSec=5", "LimitNOFILE=65536",
            "After=network-online.target", "StateDirectory=pgkeel/shop", "TimeoutStopSec=120"} <= lines
    assert ("ExecStart=/usr/bin/pgkeel node run -f /etc/pgkeel/shop/cluster.yaml --member db3 "
            "--dir /var/lib/pgkeel/shop --secrets /etc/pgkeel/shop") in lines
    with pytest.raises(KeyError):
        systemd_unit(cluster, "db9", Path("/x.yaml"))


def test_the_cli_refuses_an_unknown_member_naming_the_members(tmp_path: Path) -> None:
    doc = tmp_path / "c.yaml"
    doc.write_text(yaml.safe_dump(DOC))
    for args in (["render", "systemd"], ["node", "run"]):
        result = runner.invoke(app, [*args, "-f", str(doc), "--member", "db9"])
        assert result.exit_code == 1
        assert "--member db9: not in spec.members of shop (db1, db2, db3)" in " ".join(result.output.split())


def test_spec_backup_gives_the_member_a_private_pgbackrest_conf_and_a_job_that_knows_only_itself(
    tmp_path: Path,
) -> None:
    from pgkeel.backup import SecretFileError
    from pgkeel.node.config import prepare_node

    passphrase = tmp_path / "passphrase"
    passphrase.write_text("node-Secret-0123456789\n")
    passphrase.chmod(0o600)
    backup = {"repositories": [{"volume": {"path": "/mnt/shared/pgbackrest"}}],
              "encryption": {"passphraseFile": str(passphrase)}}
    cluster = parse_cluster({**DOC, "spec": {**DOC["spec"], "backup": backup}})
    init_secrets(cluster, tmp_path / "s")
    paths = NodePaths(tmp_path / "state")
    config = node_config(cluster, "db2", paths, Bundle(tmp_path / "s" / "db2", "db2"))
    job = config.backup
    assert job is not None and job.stanza == "shop" and job.config_file == paths.conf / "pgbackrest.conf"
    assert list(job.hosts) == ["db2"] and job.hosts["db2"].port == 5433 and job.from_standby is False
    assert job.drill_scratch == paths.base / "backup" / "drill" and config.archive_max_backlog is not None
    prepare_node(cluster, config, paths)
    conf = job.config_file
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # it holds the passphrase, copied from its file
    assert "repo1-cipher-pass=node-Secret-0123456789" in conf.read_text()
    assert "repo1-path=/mnt/shared/pgbackrest" in conf.read_text() and (paths.base / "backup" / "log").is_dir()
    passphrase.chmod(0o644)
    with pytest.raises(SecretFileError, match=r"spec\.backup\.encryption\.passphraseFile: .* chmod 600"):
        prepare_node(cluster, config, paths)
