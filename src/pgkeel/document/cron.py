"""Cron-like schedules (`minute hour day-of-month month day-of-week`), validated when the document loads.

Only checked here, so a typo in a backup schedule is refused with its field path instead of a
schedule that silently never fires; the agent that runs schedules reads the same five fields.
"""

from __future__ import annotations

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def _check_number(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit():
        raise ValueError(f"{name}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is outside {low}–{high}")
    return value


def _check_part(part: str, name: str, low: int, high: int) -> None:
    base, slash, step = part.partition("/")
    if slash:
        _check_number(step, name, 1, high)
    if base == "*":
        return
    start, dash, end = base.partition("-")
    first = _check_number(start, name, low, high)
    if dash and _check_number(end, name, low, high) < first:
        raise ValueError(f"{name}: range {base!r} runs backwards")


def check_cron(expression: str) -> str:
    """The expression unchanged, or ValueError naming the bad field and showing a valid example."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} needs 5 fields (minute hour day-of-month month day-of-week), e.g. '0 1 * * 0' "
            "for Sundays at 01:00"
        )
    for text, (name, low, high) in zip(fields, FIELDS, strict=True):
        for part in text.split(","):
            try:
                _check_part(part, name, low, high)
            except ValueError as exc:
                raise ValueError(f"{expression!r}: {exc} (e.g. '0 1 * * 0', '*/15 * * * *', '30 2 * * 1-6')") from None
    return expression
