"""The cluster CA and node certificates: names, chain, renewal before expiry, pods' certificates issued ahead."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pgkeel.document import parse_cluster
from pgkeel.k8s.secrets import pod_certificates
from pgkeel.tls import SERVER_CERT, SERVER_KEY, create_ca, ensure_server_certificate, inspect, issued_by


def test_server_certificate_carries_every_name_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    ca = create_ca("demo")
    names = ["demo-0.demo-hl.ns.svc", "demo-rw.ns.svc", "127.0.0.1"]
    assert ensure_server_certificate(tmp_path, ca, "demo-0", names)
    cert = x509.load_pem_x509_certificate((tmp_path / SERVER_CERT).read_bytes())
    cert.verify_directly_issued_by(ca.cert)
    info = inspect(tmp_path / SERVER_CERT)
    assert info is not None and info.names == frozenset(names)
    assert (tmp_path / SERVER_KEY).stat().st_mode & 0o777 == 0o600
    assert 364 < info.days_left() <= 365


def test_valid_certificate_is_kept(tmp_path: Path) -> None:
    ca = create_ca("demo")
    ensure_server_certificate(tmp_path, ca, "n", ["127.0.0.1"])
    before = (tmp_path / SERVER_CERT).read_bytes()
    assert not ensure_server_certificate(tmp_path, ca, "n", ["127.0.0.1"])
    assert (tmp_path / SERVER_CERT).read_bytes() == before


def test_renewed_before_expiry_and_when_a_name_is_missing(tmp_path: Path) -> None:
    ca = create_ca("demo")
    ensure_server_certificate(tmp_path, ca, "n", ["127.0.0.1"], days=10)
    assert ensure_server_certificate(tmp_path, ca, "n", ["127.0.0.1"], renew_before_days=30)  # 10 < 30 days left
    info = inspect(tmp_path / SERVER_CERT)
    assert info is not None and info.days_left() > 300
    assert ensure_server_certificate(tmp_path, ca, "n", ["127.0.0.1", "localhost"])  # a new name
    assert "localhost" in inspect(tmp_path / SERVER_CERT).names  # type: ignore[union-attr]


def test_ca_is_a_constrained_ca_with_a_p256_key() -> None:
    ca = create_ca("demo")
    basic = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 0
    assert isinstance(ca.key.curve, ec.SECP256R1)
    assert ca.cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=3000)


def test_a_certificate_of_another_ca_is_reissued(tmp_path: Path) -> None:
    """A replaced CA leaves older leaves untrusted by every peer: re-issue instead of keeping them."""
    old, new = create_ca("demo"), create_ca("demo")
    ensure_server_certificate(tmp_path, old, "n", ["127.0.0.1"])
    assert issued_by((tmp_path / SERVER_CERT).read_bytes(), old)
    assert not issued_by((tmp_path / SERVER_CERT).read_bytes(), new)
    assert ensure_server_certificate(tmp_path, new, "n", ["127.0.0.1"])
    assert issued_by((tmp_path / SERVER_CERT).read_bytes(), new)
    assert not issued_by(b"not a certificate", new)


def test_pod_certificates_name_the_pod_and_the_client_services() -> None:
    """Every form a client writes, short to fully qualified, so verify-full accepts the usual FQDN."""
    cluster = parse_cluster({"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster",
                             "metadata": {"name": "pg", "namespace": "db"}, "spec": {"instances": 3}})
    ca = create_ca("pg")
    data = pod_certificates(cluster, ca)
    for i in range(3):
        cert = x509.load_pem_x509_certificate(data[f"pg-{i}.crt"].encode())
        cert.verify_directly_issued_by(ca.cert)
        names = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                    .get_values_for_type(x509.DNSName))
        pod = f"pg-{i}.pg-hl"
        assert {pod, f"{pod}.db", f"{pod}.db.svc", f"{pod}.db.svc.cluster.local"} <= names
        for svc in ("pg-rw", "pg-ro"):
            assert {svc, f"{svc}.db", f"{svc}.db.svc", f"{svc}.db.svc.cluster.local"} <= names
        assert not any(name.startswith(f"pg-{(i + 1) % 3}.") for name in names)  # not another pod's names
        key = data[f"pg-{i}.key"].encode()
        private = serialization.load_pem_private_key(key, password=None)
        assert private.public_key() == cert.public_key()
        assert 364 < (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days + 1 <= 365
