"""The rules that judge a restore drill, on plain values: the end of the archive, the verdict, the record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pgkeel.backup.drill import REQUIRED
from pgkeel.backup.drill_result import (
    ARCHIVE_END,
    Check,
    DrillResult,
    first_unreplayed,
    judge_archive_end,
    last_segment,
    parse_segment,
    replayed_timeline,
    segment_name,
    verdict,
)

SEG = 16 * 2**20


def test_segment_names_round_trip_across_a_log_file_boundary() -> None:
    assert segment_name(1, 0xFF) == "0000000100000000000000FF"
    assert segment_name(1, 0x100) == "000000010000000100000000"
    assert parse_segment("000000030000000100000002") == (3, 0x102)
    assert parse_segment(segment_name(2, 12345)) == (2, 12345)
    with pytest.raises(ValueError, match="not a WAL segment"):
        parse_segment("00000002.history")


def test_replay_that_ends_on_a_segment_boundary_belongs_to_the_segment_before_it() -> None:
    # pg_switch_wal's record ends where the next segment begins: that segment was not replayed.
    assert last_segment(4 * SEG) == 3
    assert last_segment(4 * SEG + 1) == 4
    assert first_unreplayed(4 * SEG, 1) == "000000010000000000000004"


def test_recovery_through_the_archives_last_segment_is_green() -> None:
    check = judge_archive_end(4 * SEG, "0/4000000", 1, "000000010000000000000003", None)
    assert check.name == ARCHIVE_END and check.ok
    assert "replayed through 000000010000000000000003" in check.detail


def test_recovery_past_the_end_read_before_the_restore_is_green() -> None:
    # The primary archived more while the drill ran: the copy replayed further than the end it was given.
    assert judge_archive_end(9 * SEG, "0/9000000", 1, "000000010000000000000005", None).ok


def test_recovery_that_stops_before_the_archive_end_names_the_missing_segment() -> None:
    check = judge_archive_end(4 * SEG, "0/4000000", 1, "000000010000000000000005", "missing")
    assert not check.ok
    assert "segment 000000010000000000000004 is missing from the archive" in check.detail
    assert "goes on to 000000010000000000000005" in check.detail


def test_a_segment_that_is_there_but_unusable_is_named_with_the_reason() -> None:
    check = judge_archive_end(4 * SEG, "0/4000000", 1, "000000010000000000000005", "checksum mismatch")
    assert not check.ok and "000000010000000000000004 could not be used: checksum mismatch" in check.detail


def test_recovery_left_on_an_older_timeline_than_the_archive_reaches_is_red() -> None:
    check = judge_archive_end(9 * SEG, "0/9000000", 1, "000000020000000000000007", None)
    assert not check.ok and "timeline 2" in check.detail and "history file" in check.detail


def test_the_replayed_timeline_is_the_parent_on_the_new_history_files_last_line() -> None:
    history = "1\t0/5000000\tno recovery target specified\n\n2\t0/9000060\tno recovery target specified\n"
    assert replayed_timeline(history) == 2
    assert replayed_timeline("") is None


ALL_PASSED = tuple(Check(name, True, "") for name in sorted(REQUIRED))


@pytest.mark.parametrize(("checks", "error", "green"), [
    (ALL_PASSED, None, True),
    (tuple(Check(name, name != "amcheck", "") for name in sorted(REQUIRED)), None, False),
    ((Check("restore", True, ""),), None, False),  # a drill that stopped early is never green
    (ALL_PASSED, "the repository has no backup yet", False),
])
def test_a_drill_is_green_only_when_every_required_check_ran_and_passed(
    checks: tuple[Check, ...], error: str | None, green: bool
) -> None:
    assert verdict(checks, error, REQUIRED) is green


def test_the_record_is_json_with_the_failure_in_one_line_and_the_lag_behind_the_start() -> None:
    started = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    result = DrillResult(
        ok=False, started=started, finished=started + timedelta(seconds=12.345), backup="20261204-015000F",
        archive_end="000000010000000000000005", recovered_lsn="0/4000000", recovered_timeline=1,
        recovered_time=started - timedelta(seconds=90),
        checks=(Check("restore", True, "restored"), Check(ARCHIVE_END, False, "gap in the archive: …")),
    )
    record = json.loads(json.dumps(result.as_dict()))
    assert record["duration_s"] == 12.35 and record["recovered_lag_s"] == 90.0
    assert record["failure"] == "archive-end: gap in the archive: …"
    assert record["checks"][1] == {"name": ARCHIVE_END, "ok": False, "detail": "gap in the archive: …"}


def test_the_recovered_lag_is_the_drill_start_minus_the_recovered_time_and_none_when_nothing_was_recovered() -> None:
    started = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    green = DrillResult(ok=True, started=started, finished=started + timedelta(seconds=5), backup="b",
                        archive_end=None, recovered_lsn="0/4000000", recovered_timeline=1,
                        recovered_time=started - timedelta(seconds=30))
    assert green.recovered_lag_s == 30.0 and green.duration_s == 5.0
    red = DrillResult(ok=False, started=started, finished=started, backup=None, archive_end=None,
                      recovered_lsn=None, recovered_timeline=None, recovered_time=None, error="no backup")
    assert red.recovered_lag_s is None and red.failure == "no backup"
