"""Cron as cron reads it: the latest occurrence not after now, and the next one after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgkeel.backup.schedule import Cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "now", "latest", "following"),
    [
        ("0 1 * * 0", "2026-12-04T02:00", "2026-11-29T01:00", "2026-12-06T01:00"),  # Sundays 01:00; 12-04 is a Friday
        ("0 1 * * 1-6", "2026-12-04T00:59", "2026-12-03T01:00", "2026-12-04T01:00"),
        ("0 1 * * 1-6", "2026-12-04T01:00", "2026-12-04T01:00", "2026-12-05T01:00"),
        ("*/15 * * * *", "2026-12-04T10:44", "2026-12-04T10:30", "2026-12-04T10:45"),
        ("5/20 * * * *", "2026-12-04T10:24", "2026-12-04T10:05", "2026-12-04T10:25"),
        ("30 2 1 * *", "2026-12-04T00:00", "2026-12-01T02:30", "2027-01-01T02:30"),
        ("0 0 29 2 *", "2026-12-04T00:00", "2024-02-29T00:00", "2028-02-29T00:00"),
        ("0 0 13 * 5", "2026-12-04T00:00", "2026-12-04T00:00", "2026-12-11T00:00"),  # 13th OR a Friday
        ("0 12 * * 7", "2026-12-06T11:59", "2026-11-29T12:00", "2026-12-06T12:00"),  # 7 is Sunday too
    ],
)
def test_latest_and_next_occurrence(expression: str, now: str, latest: str, following: str) -> None:
    cron = Cron.parse(expression)
    assert cron.latest(at(now)) == at(latest)
    assert cron.next(at(now)) == at(following)


def test_a_bad_expression_is_refused_with_its_field() -> None:
    with pytest.raises(ValueError, match="hour: 24 is outside 0–23"):
        Cron.parse("0 24 * * *")


def _matches(cron: Cron, moment: datetime) -> bool:
    return cron.day_matches(moment.date()) and moment.hour in cron.hours and moment.minute in cron.minutes


@settings(max_examples=300, deadline=None)
@given(
    minute=st.sampled_from(["*", "0", "*/7", "3-50/9", "15,45"]),
    hour=st.sampled_from(["*", "2", "*/5", "1-4"]),
    day=st.sampled_from(["*", "1", "15-20", "31"]),
    weekday=st.sampled_from(["*", "0", "1-5", "6,7"]),
    offset=st.integers(min_value=0, max_value=400 * 24 * 60),
)
def test_latest_is_the_last_matching_minute_and_next_the_first_one_after(
    minute: str, hour: str, day: str, weekday: str, offset: int
) -> None:
    cron = Cron.parse(f"{minute} {hour} {day} * {weekday}")
    now = at("2026-01-01T00:00") + timedelta(minutes=offset, seconds=17)
    latest, following = cron.latest(now), cron.next(now)
    assert latest is not None and following is not None
    assert latest <= now < following and _matches(cron, latest) and _matches(cron, following)
    step = latest + timedelta(minutes=1)
    while step < following and step - latest < timedelta(days=3):  # nothing matches in between
        assert not _matches(cron, step), step
        step += timedelta(minutes=1)
