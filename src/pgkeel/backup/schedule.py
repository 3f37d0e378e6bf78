"""When a cron schedule fired last and fires next (minute hour day-of-month month day-of-week, UTC). Pure.

The document checks the five fields (pgkeel.document.cron); this reads them the way cron does:
`*`, lists, ranges and steps; day-of-week 0 and 7 are Sunday; when both day fields are restricted a
day matches either of them. The backup scheduler asks only "which occurrence is the latest one not
after now", so an agent that was down at the scheduled minute still finds the occurrence it missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pgkeel.document.cron import FIELDS, check_cron

SEARCH_DAYS = 4 * 366 + 1  # 29 February: the rarest day a valid expression can name


def _values(text: str, low: int, high: int) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        else:
            first, dash, last = base.partition("-")
            start = int(first)
            end = int(last) if dash else (high if step_text else start)
        found.update(range(start, end + 1, step))
    return frozenset(found)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the matching values of each field."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday
    any_day: bool  # day-of-month is `*`
    any_weekday: bool  # day-of-week is `*`

    @classmethod
    def parse(cls, expression: str) -> Cron:
        check_cron(expression)
        fields = expression.split()
        sets = [_values(text, low, high) for text, (_, low, high) in zip(fields, FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(expression, sets[0], sets[1], sets[2], sets[3], weekdays,
                   fields[2].startswith("*"), fields[4].startswith("*"))

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return in_week
        if self.any_weekday:
            return in_month
        return in_month or in_week  # both restricted: cron fires on either

    def latest(self, now: datetime) -> datetime | None:
        """The latest minute matching the expression that is not after `now` (None if none in four years)."""
        now = now.astimezone(UTC).replace(second=0, microsecond=0)
        for back in range(SEARCH_DAYS):
            day = (now - timedelta(days=back)).date()
            if not self.day_matches(day):
                continue
            for hour in sorted(self.hours, reverse=True):
                if back == 0 and hour > now.hour:
                    continue
                for minute in sorted(self.minutes, reverse=True):
                    if back == 0 and hour == now.hour and minute > now.minute:
                        continue
                    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        return None

    def next(self, now: datetime) -> datetime | None:
        """The first minute matching the expression after `now` (None if none in four years)."""
        now = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for ahead in range(SEARCH_DAYS):
            day = (now + timedelta(days=ahead)).date()
            if not self.day_matches(day):
                continue
            for hour in sorted(self.hours):
                if ahead == 0 and hour < now.hour:
                    continue
                for minute in sorted(self.minutes):
                    if ahead == 0 and hour == now.hour and minute < now.minute:
                        continue
                    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        return None
