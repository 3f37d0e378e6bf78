"""TLS: the cluster CA and per-node server certificates."""

from pgkeel.tls.certs import (
    SERVER_CERT,
    SERVER_KEY,
    CertificateAuthority,
    create_ca,
    ensure_server_certificate,
    inspect,
    issue_server_certificate,
    issued_by,
)

__all__ = [
    "SERVER_CERT",
    "SERVER_KEY",
    "CertificateAuthority",
    "create_ca",
    "ensure_server_certificate",
    "inspect",
    "issue_server_certificate",
    "issued_by",
]
