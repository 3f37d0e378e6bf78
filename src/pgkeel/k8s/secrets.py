"""The cluster's two Secrets, made once and never by `render k8s`, so re-applying manifests keeps credentials.

`<name>-secrets`: the passwords and the API token, random, `immutable` (an accidental apply of
fresh ones is refused by the API server instead of breaking the next pod restart).
`<name>-certs`: the CA certificate and, for each of the StatefulSet's fixed pod names, a server
certificate and key issued ahead. The CA key is in neither: it stays with the operator, who needs
it only to issue certificates again (renewal, more instances).
`<name>-backup` (spec.backup with S3 or encryption): the S3 keys and the passphrase, read from the 0600 files
the document names on the operator's machine, keyed by pgBackRest option (the pods' PGBACKREST_* variables);
not immutable, so rotated keys are applied again (the pods read them when they start).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pgkeel.backup.secret_env import secret_values
from pgkeel.document import PostgresCluster
from pgkeel.k8s import layout
from pgkeel.k8s.manifests import Manifest, object_meta
from pgkeel.tls import CertificateAuthority, create_ca, issue_server_certificate

CA_KEY_FILE = "ca.key"  # on the operator's machine only


def create_cluster_ca(cluster: PostgresCluster, directory: Path) -> CertificateAuthority:
    """A new CA saved as DIR/ca.crt and DIR/ca.key (0600; a new DIR 0700); refuses to replace an existing one.

    Replacing the CA of a running cluster would leave every pod trusting certificates no peer has.
    """
    key_file = directory / CA_KEY_FILE
    if key_file.exists():
        raise FileExistsError(f"{key_file} exists")
    if not directory.exists():
        directory.mkdir(parents=True)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    ca = create_ca(cluster.name)
    ca.save(directory / layout.CA_CERT_KEY, key_file)
    return ca


def load_cluster_ca(directory: Path) -> CertificateAuthority:
    ca = CertificateAuthority.load(directory / layout.CA_CERT_KEY, directory / CA_KEY_FILE)
    ca.key  # noqa: B018 - parse now, so a wrong file is reported before anything is issued
    ca.cert  # noqa: B018
    return ca


def generate_credentials() -> dict[str, str]:
    """Fresh random passwords and API token (URL-safe: no quoting trouble in conninfo or headers)."""
    return {key: secrets.token_urlsafe(32) for key in layout.SECRET_KEYS}


def credentials_secret(cluster: PostgresCluster, values: Mapping[str, str]) -> Manifest:
    missing = [k for k in layout.SECRET_KEYS if not values.get(k)]
    if missing:
        raise ValueError(f"secret values missing: {', '.join(missing)}")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(cluster, cluster.name + layout.SECRET_SUFFIX),
        "type": "Opaque",
        "immutable": True,
        "stringData": {k: values[k] for k in layout.SECRET_KEYS},
    }


def pod_certificates(
    cluster: PostgresCluster, ca: CertificateAuthority, domain: str = layout.DEFAULT_CLUSTER_DOMAIN
) -> dict[str, str]:
    """`ca.crt` and `<pod>.crt` / `<pod>.key` for every pod the StatefulSet may run (a scaling adds pods past the
    document's members: layout.stateful_set_pods), each certificate naming every DNS name of its pod."""
    namespace = cluster.metadata.namespace
    data = {layout.CA_CERT_KEY: ca.cert_pem.decode()}
    for pod in layout.stateful_set_pods(cluster.name):
        names = layout.server_names(pod, cluster.name, namespace, domain)
        cert_pem, key_pem = issue_server_certificate(ca, pod, names, cluster.spec.tls.certificate_days)
        cert_key, key_key = layout.pod_cert_keys(pod)
        data[cert_key], data[key_key] = cert_pem.decode(), key_pem.decode()
    return data


def certs_secret(
    cluster: PostgresCluster, ca: CertificateAuthority, domain: str = layout.DEFAULT_CLUSTER_DOMAIN
) -> Manifest:
    """The TLS Secret; `kubectl apply` it again after re-issuing (renewal), then restart or reload the pods."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(cluster, cluster.name + layout.CERTS_SUFFIX),
        "type": "Opaque",
        "stringData": pod_certificates(cluster, ca, domain),
    }


def backup_secret(cluster: PostgresCluster) -> Manifest | None:
    """spec.backup's secrets, from the files the document names; None when it needs none (SecretFileError)."""
    values = secret_values(cluster.spec.backup) if cluster.spec.backup is not None else {}
    if not values:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(cluster, cluster.name + layout.BACKUP_SECRET_SUFFIX),
        "type": "Opaque",
        "stringData": values,
    }


def render_secrets(
    cluster: PostgresCluster,
    ca: CertificateAuthority | None,
    *,
    credentials: Mapping[str, str] | None = None,
    domain: str = layout.DEFAULT_CLUSTER_DOMAIN,
) -> list[Manifest]:
    """The Secrets of a new cluster (the certs Secret only with TLS on, which needs `ca`; the backup Secret only
    when spec.backup has S3 keys or a passphrase)."""
    docs = [credentials_secret(cluster, credentials or generate_credentials())]
    backup = backup_secret(cluster)
    if backup is not None:
        docs.append(backup)
    if cluster.spec.tls.enabled:
        if ca is None:
            raise ValueError("spec.tls.enabled is true: a CA is needed to issue the pod certificates")
        docs.append(certs_secret(cluster, ca, domain))
    return docs
