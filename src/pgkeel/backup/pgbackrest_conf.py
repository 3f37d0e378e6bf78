"""pgbackrest.conf for a cluster: repositories, retention, encryption, paths. Rendered by us, never edited.

The file holds the repositories' secrets (S3 keys, cipher passphrase), copied from the 0600 files
the document names, so it is written 0600 and owned by postgres; nothing secret goes on a
command line. Nothing node-specific is in it (pg1-path etc. are given per command), so every
node reads the same file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgkeel.document.backup import BackupSpec, Encryption, Repository, Retention


class SecretFileError(ValueError):
    """A secret file the document names is missing, unreadable, too open, or malformed."""


def read_secret(path: str, field: str) -> str:
    """The one-line secret in `path`; SecretFileError naming the document field otherwise."""
    file = Path(path)
    try:
        mode = file.stat().st_mode & 0o777
        text = file.read_text().strip()
    except OSError as exc:
        raise SecretFileError(f"{field}: cannot read {path} ({exc.strerror}); create it with mode 0600") from None
    if mode & 0o077:
        raise SecretFileError(f"{field}: {path} has mode {mode:o}; others may read it: chmod 600 {path}")
    if not text:
        raise SecretFileError(f"{field}: {path} is empty; put the secret on its first line")
    return text


def read_s3_credentials(path: str, field: str) -> tuple[str, str]:
    """(access key id, secret access key) from a file of `accessKeyId=…` / `secretAccessKey=…` lines."""
    found: dict[str, str] = {}
    for line in read_secret(path, field).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    missing = [k for k in ("accessKeyId", "secretAccessKey") if not found.get(k)]
    if missing:
        raise SecretFileError(f"{field}: {path} lacks {' and '.join(missing)}; write lines like accessKeyId=AKIA…")
    return found["accessKeyId"], found["secretAccessKey"]


@dataclass(frozen=True)
class ConfPaths:
    """Where pgBackRest writes its logs and locks (per cluster, so two clusters never share a lock)."""

    log_path: Path
    lock_path: Path


def _repository_lines(index: int, repo: Repository, field: str, inline_secrets: bool = True) -> list[str]:
    key = f"repo{index}"
    if repo.volume is not None:
        return [f"{key}-type=posix", f"{key}-path={repo.volume.path}"]
    s3 = repo.s3
    assert s3 is not None  # Repository validates exactly one
    lines = [
        f"{key}-type=s3",
        f"{key}-path={s3.path}",
        f"{key}-s3-endpoint={s3.host}",  # the host only: pgBackRest takes the port apart
        f"{key}-s3-bucket={s3.bucket}",
        f"{key}-s3-region={s3.region}",
        f"{key}-s3-uri-style={s3.uri_style}",
    ]
    if inline_secrets:  # else pgBackRest reads them from PGBACKREST_REPO<n>_S3_KEY[_SECRET] (backup.secret_env)
        access, secret = read_s3_credentials(s3.credentials_file, f"{field}.s3.credentialsFile")
        lines += [f"{key}-s3-key={access}", f"{key}-s3-key-secret={secret}"]
    if s3.port is not None:
        lines.append(f"{key}-storage-port={s3.port}")
    if s3.ca_file:
        lines.append(f"{key}-storage-ca-file={s3.ca_file}")  # verification stays on: never verify-tls=n
    return lines


def _retention_lines(index: int, retention: Retention) -> list[str]:
    key = f"repo{index}"
    if retention.full_days is not None:
        return [f"{key}-retention-full-type=time", f"{key}-retention-full={retention.full_days}"]
    if retention.full is not None:
        return [f"{key}-retention-full-type=count", f"{key}-retention-full={retention.full}"]
    return [f"{key}-retention-full-type=count", f"{key}-retention-full=9999999"]  # keep all, said explicitly


def _encryption_lines(index: int, encryption: Encryption | None, field: str, inline_secrets: bool = True) -> list[str]:
    if encryption is None:
        return []
    if not inline_secrets:  # the passphrase comes from PGBACKREST_REPO<n>_CIPHER_PASS
        return [f"repo{index}-cipher-type=aes-256-cbc"]
    passphrase = read_secret(encryption.passphrase_file, f"{field}.passphraseFile")
    return [f"repo{index}-cipher-type=aes-256-cbc", f"repo{index}-cipher-pass={passphrase}"]


def render_repositories(
    repositories: list[Repository],
    retention: Retention | None,
    encryption: Encryption | None,
    field: str,
    encryption_field: str,
    inline_secrets: bool = True,
) -> list[str]:
    """repo1…repoN lines; `field` names the list (with an index) or the one repository (without)."""
    lines: list[str] = []
    for i, repo in enumerate(repositories, start=1):
        name = f"{field}[{i - 1}]" if field.endswith("repositories") else field
        lines += _repository_lines(i, repo, name, inline_secrets)
        if retention is not None:
            lines += _retention_lines(i, retention)
        lines += _encryption_lines(i, encryption, encryption_field, inline_secrets)
    return lines


def archive_lines(backup: BackupSpec, backlog_bytes: int) -> list[str]:
    """stopArchiving: pgBackRest itself drops WAL once the queue passes the bound (reporting success, with a
    WARN in the postgres log), so the bound holds even while the agent is down; stopWrites: never dropped."""
    if backup.archive.on_backlog_full != "stopArchiving":
        return []
    return [f"archive-push-queue-max={backlog_bytes}"]


def _text(stanza: str, repo_lines: list[str], paths: ConfPaths, extra: Sequence[str] = ()) -> str:
    body = [
        "# pgbackrest.conf generated by pgkeel from spec.backup; do not edit: change the document.",
        "[global]",
        *repo_lines,
        f"log-path={paths.log_path}",
        f"lock-path={paths.lock_path}",
        "log-level-console=warn",
        "log-level-stderr=error",
        "log-level-file=info",
        "start-fast=y",  # a backup starts with an immediate checkpoint, not a spread one
        "compress-type=lz4",
        "process-max=2",
        "archive-timeout=120",
        *extra,
        "",
        f"[{stanza}]",
    ]
    return "\n".join(body) + "\n"


def render_conf(
    stanza: str, backup: BackupSpec, paths: ConfPaths, backlog_bytes: int, *, inline_secrets: bool = True
) -> str:
    """The cluster's own pgbackrest.conf (stanza = metadata.name; `backlog_bytes`: ClusterSpec.archive_backlog_bytes);
    SecretFileError for a bad secret file. `inline_secrets=False`: no secret in it (a ConfigMap; pgBackRest reads
    them from the environment, see backup.secret_env), and no secret file is read."""
    repo_lines = render_repositories(
        list(backup.repositories), backup.retention, backup.encryption, "spec.backup.repositories",
        "spec.backup.encryption", inline_secrets,
    )
    return _text(stanza, repo_lines, paths, archive_lines(backup, backlog_bytes))


def render_restore_conf(
    stanza: str, repository: Repository, encryption: Encryption | None, paths: ConfPaths
) -> str:
    """A config for restoring from spec.bootstrap.fromBackup's repository (another cluster's stanza)."""
    repo_lines = render_repositories(
        [repository], None, encryption, "spec.bootstrap.fromBackup.repository", "spec.bootstrap.fromBackup.encryption"
    )
    return _text(stanza, repo_lines, paths)
