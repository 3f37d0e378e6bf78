"""etcd 3.4 with TLS and username/password, as a secured production etcd runs: the store works through
it, re-authenticates when its token expires, and wrong credentials or a wrong CA are clear errors."""

from __future__ import annotations

import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pgkeel.dcs import DCSError, EtcdAccess, open_dcs
from pgkeel.lab.etcd import enable_auth
from pgkeel.lab.procs import spawn, stop
from pgkeel.tls import create_ca, issue_server_certificate

ETCD_BIN = "/usr/bin/etcd"
SCOPE = "authed"


@dataclass
class SecureEtcd:
    endpoint: str  # host:port
    ca: Path
    password_file: Path
    root: Path


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def secure_etcd() -> Iterator[SecureEtcd]:
    """One etcd on loopback: https for clients, auth on, user `pgkeel` limited to /pgkeel/authed/; 1 s tokens."""
    root = Path(tempfile.mkdtemp(prefix="pgkeel-etcd-auth-"))
    ca = create_ca("etcd-test")
    cert, key = issue_server_certificate(ca, "etcd", ["127.0.0.1", "localhost"], client_auth=True)
    (root / "ca.crt").write_bytes(ca.cert_pem)
    (root / "etcd.crt").write_bytes(cert)
    (root / "etcd.key").write_bytes(key)
    client, peer = _port(), _port()
    proc = spawn([
        ETCD_BIN, "--name=s", f"--data-dir={root / 'data'}",
        f"--listen-client-urls=https://127.0.0.1:{client}", f"--advertise-client-urls=https://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=s=http://127.0.0.1:{peer}", f"--cert-file={root / 'etcd.crt'}",
        f"--key-file={root / 'etcd.key'}",  # no --trusted-ca-file: with it etcd 3.4 demands client certificates
        "--auth-token-ttl=1", "--heartbeat-interval=10", "--election-timeout=100", "--log-level=warn",
    ], root / "etcd.log")
    try:
        verify = ssl.create_default_context(cafile=str(root / "ca.crt"))
        url = f"https://127.0.0.1:{client}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.post(f"{url}/v3/kv/range", json={"key": "AA=="}, verify=verify, timeout=0.5).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (root / "etcd.log").read_text()
            time.sleep(0.1)
        enable_auth(url, verify, "root-secret", "pgkeel", "pgkeel-secret", f"/pgkeel/{SCOPE}/")
        (root / "password").write_text("pgkeel-secret\n")
        yield SecureEtcd(f"127.0.0.1:{client}", root / "ca.crt", root / "password", root)
    finally:
        stop(proc)
        subprocess.run(["rm", "-rf", str(root)], check=False)


def _open(etcd: SecureEtcd, password_file: Path | None = None, ca: Path | None = None, scope: str = SCOPE):
    access = EtcdAccess(ca_file=ca or etcd.ca, user="pgkeel", password_file=password_file or etcd.password_file)
    return open_dcs(f"etcds://{etcd.endpoint}", scope, timeout=2.0, etcd=access)


def test_the_store_works_through_tls_and_auth_and_survives_token_expiry(secure_etcd: SecureEtcd) -> None:
    dcs = _open(secure_etcd)
    try:
        assert dcs.acquire_leader("n1", ttl=3.0)
        assert dcs.view().leader is not None and dcs.view().leader.holder == "n1"  # type: ignore[union-attr]
        time.sleep(2.5)  # past --auth-token-ttl=1: etcd forgot our token; the next call authenticates again
        assert dcs.view().leader is not None
        dcs.release_leader("n1")
        assert dcs.view().leader is None
    finally:
        dcs.close()


def test_anonymous_access_is_refused_so_auth_really_is_on(secure_etcd: SecureEtcd) -> None:
    dcs = open_dcs(f"etcds://{secure_etcd.endpoint}", SCOPE, timeout=2.0, etcd=EtcdAccess(ca_file=secure_etcd.ca))
    try:
        with pytest.raises(DCSError, match="user name is empty"):
            dcs.view()
    finally:
        dcs.close()


def test_a_user_limited_to_its_prefix_cannot_touch_another_cluster(secure_etcd: SecureEtcd) -> None:
    dcs = _open(secure_etcd, scope="other")
    try:
        with pytest.raises(DCSError, match="permission denied"):
            dcs.view()
    finally:
        dcs.close()


def test_wrong_password_names_the_user_and_what_to_check(secure_etcd: SecureEtcd, tmp_path: Path) -> None:
    wrong = tmp_path / "pw"
    wrong.write_text("nope\n")
    dcs = _open(secure_etcd, password_file=wrong)
    try:
        with pytest.raises(DCSError, match=r"authenticating as 'pgkeel': .*authentication failed.*spec\.store"):
            dcs.view()
    finally:
        dcs.close()


def test_a_server_certificate_from_another_ca_is_refused(secure_etcd: SecureEtcd, tmp_path: Path) -> None:
    other = tmp_path / "other.crt"
    other.write_bytes(create_ca("someone-else").cert_pem)
    dcs = _open(secure_etcd, ca=other)
    try:
        with pytest.raises(DCSError, match="CERTIFICATE_VERIFY_FAILED"):
            dcs.view()
    finally:
        dcs.close()
