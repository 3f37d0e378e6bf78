"""spec.backup in pods: the primary archives with the ConfigMap's secret-free pgbackrest.conf and the passphrase
from the environment, a `POST /backup` to any pod is run by the leader's agent, and after a switchover the new
primary archives (its timeline's history file reaches the repository).

All pods run on this machine, so one directory stands for the ReadWriteMany volume every pod mounts; the repository
is encrypted so that the passphrase must travel as the backup Secret's PGBACKREST_REPO1_CIPHER_PASS, through the
agent into postgres (archive_command) and into the agent's own pgBackRest runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from pgkeel.backup.secret_env import env_name
from pgkeel.k8s import layout
from pgkeel.local.layout import chown_for_postgres

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="agents drop to the postgres user: run as root"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"), reason="needs PostgreSQL 15"),
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="needs pgbackrest"),
]

PodCluster = Any  # conftest's class; test modules do not import conftest


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, cluster: PodCluster) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"{what} not reached within {timeout}s\n{cluster.logs()}")


@pytest.fixture
def repo() -> Iterator[Path]:
    """The 'shared volume': a directory the postgres user of every pod writes (not under pytest's 0700 tmp)."""
    base = Path(tempfile.mkdtemp(prefix="pgkeel-k8s-repo-", dir="/tmp"))
    os.chmod(base, 0o755)
    (base / "repo").mkdir(mode=0o750)
    chown_for_postgres(base / "repo")
    try:
        yield base / "repo"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def primary(cluster: PodCluster) -> str | None:
    """The leader once it runs as primary and every other pod streams from it."""
    holder = cluster.lease_holder()
    statuses = {pod: cluster.status(pod) for pod in cluster.names}
    if holder is None or any(s is None or "postgres" not in s for s in statuses.values()):
        return None
    if statuses[holder]["role"] != "primary":
        return None
    others = [statuses[p]["postgres"] for p in cluster.names if p != holder]
    return holder if all(pg["in_recovery"] and pg["streaming"] for pg in others) else None


def test_pods_archive_back_up_on_request_and_archive_again_after_a_switchover(
    pod_cluster: Callable[..., PodCluster], repo: Path
) -> None:
    started = time.monotonic()
    backup = {"repositories": [{"volume": {"path": str(repo), "claimName": "shared"}}],
              "encryption": {"passphraseFile": "/nonexistent/only-render-secrets-reads-it"},
              "schedule": {"full": None, "diff": None, "drill": None}}
    cluster = pod_cluster(backup=backup)
    cluster.extra_env[env_name("repo1-cipher-pass")] = secrets.token_urlsafe(24)  # what the backup Secret gives
    for pod in cluster.names:
        cluster.start(pod)
    leader = wait_for(lambda: primary(cluster), 60, "a primary with two streaming replicas", cluster)
    conf = (cluster.etc / layout.PGBACKREST_KEY).read_text()
    assert "cipher-pass" not in conf and "repo1-cipher-type=aes-256-cbc" in conf

    password = (cluster.secrets / layout.SUPERUSER_PASSWORD_KEY).read_text().strip()

    def sql(pod: str, query: str) -> Any:
        with psycopg.connect(host="127.0.0.1", port=cluster.ports[pod][0], user=cluster.cluster.spec.users.superuser,
                             password=password, dbname="postgres", connect_timeout=3, autocommit=True) as conn:
            cursor = conn.execute(query)
            return cursor.fetchone() if cursor.description else None

    def archived(pod: str) -> bool:
        sql(pod, "SELECT pg_switch_wal()")
        row = sql(pod, "SELECT archived_count, failed_count FROM pg_stat_archiver")
        return bool(row and row[0] > 0)

    sql(leader, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS v")
    wait_for(lambda: archived(leader), 30, f"{leader} archiving", cluster)
    segments = [p for p in repo.rglob("00000001000000000000000*") if p.is_file()]
    assert segments, f"no WAL segment in {repo}"
    # Encrypted (a plain archive.info starts with "[backrest]"): the passphrase from the environment was used.
    assert b"[backrest]" not in (repo / "archive" / cluster.cluster.name / "archive.info").read_bytes()

    # Asked of a replica's API; run by the leader's agent, from its own primary.
    token = (cluster.secrets / layout.API_TOKEN_KEY).read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    replica = next(p for p in cluster.names if p != leader)
    answer = httpx.post(f"http://127.0.0.1:{cluster.ports[replica][1]}/backup", json={"kind": "full"},
                        headers=auth, timeout=10)
    assert answer.status_code == 202, answer.text
    request = answer.json()["accepted"]["id"]

    def result() -> dict[str, Any] | None:
        record = httpx.get(f"http://127.0.0.1:{cluster.ports[leader][1]}/backups", timeout=5).json()
        return next((r for r in record["results"] if r["request"] == request), None)

    done = wait_for(result, 45, "the requested backup's result", cluster)
    assert done["ok"], done
    assert (done["member"], done["source"]) == (leader, leader) and done["label"], done

    answer = httpx.post(f"http://127.0.0.1:{cluster.ports[leader][1]}/switchover", json={"to": replica},
                        headers=auth, timeout=10)
    assert answer.status_code < 300, answer.text
    wait_for(lambda: cluster.lease_holder() == replica and cluster.status(replica)["role"] == "primary", 30,
             f"{replica} primary", cluster)
    wait_for(lambda: any(repo.rglob("00000002.history*")), 30, "the new primary's history file archived", cluster)
    wait_for(lambda: archived(replica), 30, f"{replica} archiving", cluster)
    print(f"archive, backup and switchover in {time.monotonic() - started:.1f} s")
