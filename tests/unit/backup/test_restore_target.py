"""Choosing the backup for a restore target, and refusing targets no backup reaches, from `pgbackrest info`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pgkeel.backup import Target, TargetError, choose_backup, parse_info, target_of
from pgkeel.document.backup import RecoveryTarget


def _set(label: str, start: int, stop: int, lsn_stop: str) -> dict[str, object]:
    return {"label": label, "type": "full", "timestamp": {"start": start, "stop": stop},
            "info": {"size": 100, "repository": {"size": 10}}, "archive": {"start": "a", "stop": "b"},
            "lsn": {"start": "0/1000000", "stop": lsn_stop}, "prior": None}


INFO = json.dumps([{
    "name": "db", "status": {"message": "ok"}, "db": [{"system-id": 42}],
    "archive": [{"min": "000000010000000000000001", "max": "000000020000000000000009"}],
    "backup": [_set("B2", 2000, 2100, "0/5000000"), _set("B1", 1000, 1100, "0/3000000")],
}])
STATE = parse_info(INFO, "db")
NOW = datetime.fromtimestamp(10_000, UTC)


def test_info_lists_backups_oldest_first_with_the_archive_range() -> None:
    assert [b.label for b in STATE.backups] == ["B1", "B2"]
    assert (STATE.wal_min, STATE.wal_max, STATE.system_identifier) == (
        "000000010000000000000001", "000000020000000000000009", "42")


def test_a_time_target_restores_the_newest_backup_that_ended_before_it() -> None:
    at = datetime.fromtimestamp(1500, UTC)
    assert choose_backup(STATE, target_of(RecoveryTarget(time=at)), NOW).label == "B1"
    assert choose_backup(STATE, target_of(RecoveryTarget(time=at + timedelta(seconds=700))), NOW).label == "B2"
    assert target_of(RecoveryTarget(time=at)).value == "1970-01-01 00:25:00.000000+00"


def test_targets_before_the_oldest_backup_or_after_the_archive_are_refused_with_what_is_reachable() -> None:
    with pytest.raises(TargetError, match=r"before the oldest backup .*B1"):
        choose_backup(STATE, target_of(RecoveryTarget(time=datetime.fromtimestamp(1050, UTC))), NOW)
    with pytest.raises(TargetError, match=r"in the future"):
        choose_backup(STATE, target_of(RecoveryTarget(time=NOW + timedelta(minutes=1))), NOW)
    with pytest.raises(TargetError, match=r"after the end of the archive .*000000020000000000000009"):
        choose_backup(STATE, target_of(RecoveryTarget(lsn="0/A000001")), NOW)
    assert choose_backup(STATE, target_of(RecoveryTarget(lsn="0/9FFFFFF")), NOW).label == "B2"
    with pytest.raises(TargetError, match=r"holds no backups"):
        choose_backup(parse_info("[]", "db"), Target("latest"), NOW)
