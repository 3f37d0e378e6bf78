"""Backups, WAL archiving and restores behind one small engine interface; pgBackRest implements it."""

from pgkeel.backup.engine import BackupEngine, BackupError, BackupSet, BackupType, PgHost, RepositoryState, Target
from pgkeel.backup.pgbackrest import PgBackRest, parse_info
from pgkeel.backup.pgbackrest_conf import ConfPaths, SecretFileError, render_conf, render_restore_conf
from pgkeel.backup.target import TargetError, choose_backup, target_of

__all__ = [
    "BackupEngine",
    "BackupError",
    "BackupSet",
    "BackupType",
    "ConfPaths",
    "PgBackRest",
    "PgHost",
    "RepositoryState",
    "SecretFileError",
    "Target",
    "TargetError",
    "choose_backup",
    "parse_info",
    "render_conf",
    "render_restore_conf",
    "target_of",
]
