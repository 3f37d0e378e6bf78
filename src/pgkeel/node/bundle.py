"""`pgkeel secrets init`: the cluster's CA, passwords and API token, made once, and one bundle per member.

DIR/ca/ holds the CA certificate and its private key and never leaves the operator's machine;
DIR/<member>/ is what is copied to that member's machine: its certificate and key (SANs: its host
and its name), the CA certificate, both passwords and the API token. The file names are the
Kubernetes Secret keys (`pgkeel.k8s.layout`), so a bundle is read exactly like a pod's mounts.
Every directory is 0700 and every file 0600. Nothing is ever overwritten: a second run would
replace credentials that running members still use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pgkeel.document import PostgresCluster
from pgkeel.instance.files import atomic_write
from pgkeel.k8s import layout
from pgkeel.k8s.secrets import create_cluster_ca, generate_credentials
from pgkeel.tls import issue_server_certificate

CA_DIR = "ca"


class BundleError(ValueError):
    """A bundle cannot be made or read; the message names the file and the fix."""


@dataclass(frozen=True)
class Bundle:
    """One member's secrets on its machine (a directory made by `pgkeel secrets init`)."""

    directory: Path
    member: str

    @property
    def ca_file(self) -> Path:
        return self.directory / layout.CA_CERT_KEY

    @property
    def cert_file(self) -> Path:
        return self.directory / layout.pod_cert_keys(self.member)[0]

    @property
    def key_file(self) -> Path:
        return self.directory / layout.pod_cert_keys(self.member)[1]

    @property
    def superuser_password_file(self) -> Path:
        return self.directory / layout.SUPERUSER_PASSWORD_KEY

    @property
    def replication_password_file(self) -> Path:
        return self.directory / layout.REPLICATION_PASSWORD_KEY

    @property
    def token_file(self) -> Path:
        return self.directory / layout.API_TOKEN_KEY

    def files(self) -> list[Path]:
        return [self.ca_file, self.cert_file, self.key_file, self.superuser_password_file,
                self.replication_password_file, self.token_file]

    def missing(self) -> list[Path]:
        return [f for f in self.files() if not f.is_file()]


def member_names_for_certificate(cluster: PostgresCluster, member: str) -> list[str]:
    """What a member's certificate names: its host (peers and clients dial it) and its member name."""
    spec = cluster.member_spec(member)
    return [n for n in (spec.host, member) if n]


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def init_secrets(cluster: PostgresCluster, out: Path) -> list[Bundle]:
    """Create DIR/ca and DIR/<member> for every member; BundleError (changing nothing) if any of them exists."""
    targets = [out / CA_DIR, *(out / m for m in cluster.member_names())]
    taken = [str(t) for t in targets if t.exists()]
    if taken:
        raise BundleError(
            f"{', '.join(taken)} already exist(s): secrets are created once, and running members use them; "
            "choose another --out, or remove that directory yourself if no member uses it"
        )
    _private_dir(out)
    ca = create_cluster_ca(cluster, out / CA_DIR)
    os.chmod(out / CA_DIR / layout.CA_CERT_KEY, 0o600)
    credentials = generate_credentials()
    bundles = []
    for member in cluster.member_names():
        bundle = Bundle(out / member, member)
        _private_dir(bundle.directory)
        names = member_names_for_certificate(cluster, member)
        cert_pem, key_pem = issue_server_certificate(ca, member, names, cluster.spec.tls.certificate_days)
        atomic_write(bundle.ca_file, ca.cert_pem.decode())
        atomic_write(bundle.cert_file, cert_pem.decode())
        atomic_write(bundle.key_file, key_pem.decode())
        for key, value in credentials.items():
            atomic_write(bundle.directory / key, value + "\n")
        bundles.append(bundle)
    return bundles
