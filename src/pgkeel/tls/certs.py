"""A cluster CA and per-node server certificates, made with `cryptography`.

Each node's certificate names every address clients and peers use for it (stable DNS names,
IPs), so replication and clients can use `sslmode=verify-full`. Files are written atomically;
PostgreSQL picks up renewed certificates on reload, so renewal needs no restart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pgkeel.instance.files import atomic_write

SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"


@dataclass(frozen=True)
class CertificateAuthority:
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> CertificateAuthority:
        return cls(cert_file.read_bytes(), key_file.read_bytes())

    def save(self, cert_file: Path, key_file: Path) -> None:
        atomic_write(cert_file, self.cert_pem.decode(), mode=0o644)
        atomic_write(key_file, self.key_pem.decode(), mode=0o600)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def create_ca(cluster: str, days: int = 3650) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pgkeel CA for {cluster}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue_server_certificate(
    ca: CertificateAuthority, common_name: str, names: list[str], days: int = 365, client_auth: bool = False
) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) for a server reachable under `names` (DNS names and IP addresses).

    `client_auth` adds the clientAuth usage: etcd's own gateway dials its server with the server's pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]
                                  + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issued_by(cert_pem: bytes, ca: CertificateAuthority) -> bool:
    """Whether the certificate was signed by this CA (a replaced CA makes every older leaf untrusted)."""
    try:
        x509.load_pem_x509_certificate(cert_pem).verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class CertificateInfo:
    not_after: dt.datetime
    names: frozenset[str]

    def days_left(self) -> float:
        return (self.not_after - _now()).total_seconds() / 86400


def inspect(cert_file: Path) -> CertificateInfo | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {str(v) for v in san.get_values_for_type(x509.DNSName)}
        names |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    except x509.ExtensionNotFound:
        names = set()
    return CertificateInfo(cert.not_valid_after_utc, frozenset(names))


def ensure_server_certificate(
    directory: Path,
    ca: CertificateAuthority,
    common_name: str,
    names: list[str],
    renew_before_days: float = 30.0,
    days: int = 365,
    owner: tuple[int, int] | None = None,
) -> bool:
    """Issue or renew DIR/server.crt + server.key when missing, expiring soon, missing a name, or signed
    by another CA.

    Returns True when new files were written (the caller reloads postgres).
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_file, key_file = directory / SERVER_CERT, directory / SERVER_KEY
    info = inspect(cert_file)
    current = (
        info is not None
        and key_file.exists()
        and info.days_left() > renew_before_days
        and set(names) <= info.names
        and issued_by(cert_file.read_bytes(), ca)
    )
    if current:
        return False
    cert_pem, key_pem = issue_server_certificate(ca, common_name, names, days)
    atomic_write(key_file, key_pem.decode(), mode=0o600)
    atomic_write(cert_file, cert_pem.decode(), mode=0o644)
    if owner is not None:
        for path in (directory, cert_file, key_file):
            os.chown(path, *owner)
    return True
