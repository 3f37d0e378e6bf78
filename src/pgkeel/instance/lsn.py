"""PostgreSQL LSNs ('16/B374D848') as integers, so positions can be compared and subtracted."""

from __future__ import annotations


def parse_lsn(text: str | None) -> int | None:
    if not text:
        return None
    high, _, low = str(text).partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
