"""The cluster CA and node certificates: names, chain, renewal before expiry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pgkeel.tls import SERVER_CERT, SERVER_KEY, create_ca, ensure_server_certificate, inspect


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
