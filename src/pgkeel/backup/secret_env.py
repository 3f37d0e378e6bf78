"""spec.backup's secrets as pgBackRest environment variables, for hosts whose pgbackrest.conf must hold none.

On Kubernetes the config is in a ConfigMap (readable by anyone who may read the namespace's ConfigMaps), so
the S3 keys and the cipher passphrase go into a Secret instead and reach pgBackRest as `PGBACKREST_<OPTION>`
variables of the postgres container: pgBackRest reads any option from the environment, secure ones included
(they are only refused on its command line). The option names are pgBackRest 2.45's `repo<n>-s3-key`,
`repo<n>-s3-key-secret` and `repo<n>-cipher-pass`.
"""

from __future__ import annotations

from pgkeel.backup.pgbackrest_conf import read_s3_credentials, read_secret
from pgkeel.document.backup import BackupSpec

ENV_PREFIX = "PGBACKREST_"


def env_name(option: str) -> str:
    """pgBackRest's variable for an option: repo1-s3-key → PGBACKREST_REPO1_S3_KEY."""
    return ENV_PREFIX + option.upper().replace("-", "_")


def secret_options(backup: BackupSpec) -> list[str]:
    """The secure options spec.backup needs, in repository order (none for unencrypted volume repositories)."""
    options: list[str] = []
    for i, repo in enumerate(backup.repositories, start=1):
        if repo.s3 is not None:
            options += [f"repo{i}-s3-key", f"repo{i}-s3-key-secret"]
        if backup.encryption is not None:
            options.append(f"repo{i}-cipher-pass")
    return options


def secret_values(backup: BackupSpec) -> dict[str, str]:
    """Option → value, read from the 0600 files the document names; SecretFileError naming the field."""
    values: dict[str, str] = {}
    for i, repo in enumerate(backup.repositories, start=1):
        if repo.s3 is not None:
            field = f"spec.backup.repositories[{i - 1}].s3.credentialsFile"
            values[f"repo{i}-s3-key"], values[f"repo{i}-s3-key-secret"] = read_s3_credentials(
                repo.s3.credentials_file, field
            )
        if backup.encryption is not None:
            values[f"repo{i}-cipher-pass"] = read_secret(
                backup.encryption.passphrase_file, "spec.backup.encryption.passphraseFile"
            )
    return values
