"""Which backup a restore starts from, and refusing targets no backup can reach (pure, no I/O).

Checked before anything is restored or started, so a target before the oldest backup or past the
end of the archive is a clear error and not a half-made cluster.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pgkeel.backup.engine import BackupSet, RepositoryState, Target
from pgkeel.document.backup import RecoveryTarget

WAL_SEGMENT_BYTES = 16 * 2**20  # initdb's default; pgkeel does not change it


class TargetError(ValueError):
    """No backup in the repository can reach the target; the message says what can."""


def target_of(document_target: str | RecoveryTarget) -> Target:
    """The document's `target` as the engine's Target (times in UTC, in the form pgBackRest takes)."""
    if isinstance(document_target, str):
        return Target("latest")
    if document_target.time is not None:
        moment = document_target.time.astimezone(UTC)
        return Target("time", moment.strftime("%Y-%m-%d %H:%M:%S.%f+00"), moment)
    if document_target.lsn is not None:
        return Target("lsn", document_target.lsn.upper())
    return Target("name", document_target.name or "")


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def segment_end(name: str) -> int:
    """The WAL position just past segment `name` (TTTTTTTTXXXXXXXXYYYYYYYY, 16 MiB segments)."""
    log, seg = int(name[8:16], 16), int(name[16:24], 16)
    return (log << 32) + (seg + 1) * WAL_SEGMENT_BYTES


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def choose_backup(state: RepositoryState, target: Target, now: datetime) -> BackupSet:
    """The newest backup that ended before the target; TargetError naming the reachable range otherwise."""
    where = f"stanza {state.stanza!r}"
    if not state.backups:
        raise TargetError(
            f"{where} holds no backups ({state.status}): take one first (`pgkeel backup now` on the source "
            "cluster), or check spec.bootstrap.fromBackup.repository and clusterName"
        )
    oldest, newest = state.backups[0], state.backups[-1]
    if target.kind == "time":
        assert target.time is not None
        if target.time > now:
            raise TargetError(
                f"target time {_stamp(target.time)} is after the end of the archive (it is in the future); "
                f"the latest point is now, target: latest"
            )
        usable = [b for b in state.backups if b.stopped <= target.time]
        if not usable:
            raise TargetError(
                f"target time {_stamp(target.time)} is before the oldest backup in {where} ({oldest.label}, "
                f"consistent from {_stamp(oldest.stopped)}); choose a time from then on"
            )
        return usable[-1]
    if target.kind == "lsn":
        lsn = parse_lsn(target.value)
        end = segment_end(state.wal_max) if state.wal_max else 0
        if lsn > end:
            raise TargetError(
                f"target lsn {target.value} is after the end of the archive in {where} (archived WAL ends at "
                f"segment {state.wal_max}); choose an earlier lsn or target: latest"
            )
        usable = [b for b in state.backups if parse_lsn(b.lsn_stop) <= lsn]
        if not usable:
            raise TargetError(
                f"target lsn {target.value} is before the oldest backup in {where} ({oldest.label}, consistent "
                f"from {oldest.lsn_stop}); choose an lsn from then on"
            )
        return usable[-1]
    return newest
