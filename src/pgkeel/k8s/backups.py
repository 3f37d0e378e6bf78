"""spec.backup in the pods: pgbackrest.conf in the ConfigMap, its secrets from a Secret, shared repository volumes.

The ConfigMap's pgbackrest.conf holds no secret (anyone who may read ConfigMaps could read it): the S3 keys and
the cipher passphrase live in the Secret `<name>-backup` (`pgkeel.k8s.secrets.backup_secret`) and reach pgBackRest
as `PGBACKREST_*` variables of the postgres container, which postgres (archive_command) and the agent's pgBackRest
runs inherit. Whichever pod is primary archives, so a `volume` repository must be one volume every pod mounts
(an existing ReadWriteMany claim, `claimName`); there is no backup from a standby, which would need the
primary's files over SSH or TLS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pgkeel.backup import ConfPaths, render_conf
from pgkeel.backup.secret_env import env_name, secret_options
from pgkeel.document import PostgresCluster
from pgkeel.k8s import layout

POD_CONF_PATHS = ConfPaths(log_path=Path(layout.BACKUP_LOG_DIR), lock_path=Path(layout.BACKUP_LOCK_DIR))


def pgbackrest_conf(cluster: PostgresCluster, paths: ConfPaths = POD_CONF_PATHS) -> str:
    """The ConfigMap's pgbackrest.conf: the local one without its secret lines (no secret file is read)."""
    assert cluster.spec.backup is not None
    return render_conf(
        cluster.name, cluster.spec.backup, paths, cluster.spec.archive_backlog_bytes, inline_secrets=False
    )


def backup_problems(cluster: PostgresCluster) -> list[str]:
    """A volume repository without a claim: each pod would archive into its own directory, lost with the pod."""
    if cluster.spec.backup is None:
        return []
    return [
        f"spec.backup.repositories[{i}].volume.claimName: on Kubernetes a volume repository must be a volume "
        "every pod mounts (whichever pod is primary archives into it); give an existing ReadWriteMany "
        "PersistentVolumeClaim, or use an s3 repository"
        for i, repo in enumerate(cluster.spec.backup.repositories)
        if repo.volume is not None and not repo.volume.claim_name
    ]


def env(cluster: PostgresCluster) -> list[dict[str, Any]]:
    """PGBACKREST_REPO<n>_… from the Secret `<name>-backup`, one per secure option spec.backup needs."""
    if cluster.spec.backup is None:
        return []
    secret = cluster.name + layout.BACKUP_SECRET_SUFFIX
    return [
        {"name": env_name(option), "valueFrom": {"secretKeyRef": {"name": secret, "key": option}}}
        for option in secret_options(cluster.spec.backup)
    ]


def _claims(cluster: PostgresCluster) -> list[tuple[int, str, str]]:
    """(index, claim, path) of every volume repository."""
    if cluster.spec.backup is None:
        return []
    return [
        (i, repo.volume.claim_name, repo.volume.path)
        for i, repo in enumerate(cluster.spec.backup.repositories)
        if repo.volume is not None and repo.volume.claim_name
    ]


def volumes(cluster: PostgresCluster) -> list[dict[str, Any]]:
    return [
        {"name": layout.backup_volume(i), "persistentVolumeClaim": {"claimName": claim}}
        for i, claim, _ in _claims(cluster)
    ]


def volume_mounts(cluster: PostgresCluster) -> list[dict[str, Any]]:
    return [{"name": layout.backup_volume(i), "mountPath": path} for i, _, path in _claims(cluster)]
