"""The in-pod agent's configuration comes from env and mounted files; passwords only reach the pgpass file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from pgkeel.agent.from_env import EnvError, config_from_env, write_passfile
from pgkeel.k8s import layout

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def mounts(tmp_path: Path) -> dict[str, str]:
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"].update(name="pg", namespace="ns")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "cluster.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "sec").mkdir()
    (tmp_path / "sec" / layout.SUPERUSER_PASSWORD_KEY).write_text("su:pa\\ss\n")
    (tmp_path / "sec" / layout.REPLICATION_PASSWORD_KEY).write_text("rep\n")
    return {
        layout.ENV_POD_NAME: "pg-1",
        layout.ENV_POD_NAMESPACE: "ns",
        layout.ENV_POD_IP: "10.0.0.7",
        layout.ENV_CLUSTER: "pg",
        layout.ENV_PGDATA: str(tmp_path / "data" / "pgdata"),
        "PGKEEL_CONFIG_DIR": str(tmp_path / "etc"),
        "PGKEEL_SECRETS_DIR": str(tmp_path / "sec"),
    }


def test_defaults_follow_the_pod_contract(mounts: dict[str, str], tmp_path: Path) -> None:
    cfg = config_from_env(mounts)
    assert cfg.name == "pg-1" and cfg.scope == "pg" and cfg.members == ["pg-0", "pg-1", "pg-2"]
    assert cfg.dcs_url == "kubernetes://ns/pg"
    assert cfg.advertise_host == "pg-1.pg-hl.ns.svc"
    assert (cfg.api_host, cfg.api_port, cfg.pg_host, cfg.pg_port) == ("10.0.0.7", 8008, "*", 5432)
    assert cfg.socket_dir == Path(layout.RUN_DIR)
    assert cfg.config_file == tmp_path / "etc" / "postgresql.conf"
    assert cfg.passfile == tmp_path / "data" / ".pgpass"
    assert cfg.tls_dir == tmp_path / "data" / "tls" and "pg-rw.ns.svc" in cfg.tls_names
    # the example leaves spec.failover unset: the Kubernetes store's timings (pgkeel.document Failover.for_store)
    assert (cfg.ha.ttl, cfg.ha.loop_wait, cfg.ha.dcs_timeout) == (9.0, 1.0, 1.5)


def test_an_ipv6_pod_ip_gives_a_bracketed_api_url_and_an_ip_certificate_name(mounts: dict[str, str]) -> None:
    cfg = config_from_env({**mounts, layout.ENV_POD_IP: "fd00::7"})
    assert cfg.api_host == "fd00::7"
    assert cfg.api_url.endswith("://[fd00::7]:8008")
    assert "fd00::7" in cfg.tls_names


def test_passfile_is_private_and_escaped(mounts: dict[str, str]) -> None:
    cfg = config_from_env(mounts)
    write_passfile(cfg)
    assert stat.S_IMODE(cfg.passfile.stat().st_mode) == 0o600
    assert cfg.passfile.read_text() == "*:*:*:postgres:su\\:pa\\\\ss\n*:*:*:replicator:rep\n"


def test_missing_identity_or_foreign_pod_is_refused(mounts: dict[str, str]) -> None:
    with pytest.raises(EnvError, match=layout.ENV_POD_NAME):
        config_from_env({k: v for k, v in mounts.items() if k != layout.ENV_POD_NAME})
    for foreign in ("other-1", "pg-9", "pg-01", "pg-x"):
        with pytest.raises(EnvError, match="not a member"):
            config_from_env({**mounts, layout.ENV_POD_NAME: foreign})


def test_a_pod_past_the_documents_instances_starts_with_the_documents_members(mounts: dict[str, str]) -> None:
    # `kubectl scale --replicas=5`: pg-3 and pg-4 start from the same ConfigMap; the leader records them.
    cfg = config_from_env({**mounts, layout.ENV_POD_NAME: "pg-4"})
    assert cfg.name == "pg-4" and cfg.members == ["pg-0", "pg-1", "pg-2"]


def test_spec_backup_gives_the_agent_its_backup_job_from_the_mounted_config(
    mounts: dict[str, str], tmp_path: Path
) -> None:
    doc = yaml.safe_load((tmp_path / "etc" / "cluster.yaml").read_text())
    doc["spec"]["backup"] = {"repositories": [{"volume": {"path": "/repo", "claimName": "backups"}}],
                             "schedule": {"full": "0 2 * * *", "diff": None}}
    (tmp_path / "etc" / "cluster.yaml").write_text(yaml.safe_dump(doc))
    cfg = config_from_env(mounts)
    job = cfg.backup
    assert job is not None and job.stanza == "pg" and (job.full, job.diff) == ("0 2 * * *", None)
    assert job.config_file == tmp_path / "etc" / "pgbackrest.conf"  # beside postgresql.conf, as the watch expects
    assert job.hosts == {} and job.from_standby is False  # a pod backs up its own primary only
    assert job.drill_scratch == tmp_path / "data" / "backup" / "drill" and job.bindir == cfg.bindir
    assert cfg.archive_max_backlog is not None
    (tmp_path / "sec" / layout.API_TOKEN_KEY).write_text("t\n")
    write_passfile(cfg)
    assert (tmp_path / "data" / "backup" / "log").is_dir()


def test_without_spec_backup_there_is_no_backup_job(mounts: dict[str, str]) -> None:
    assert config_from_env(mounts).backup is None
