"""Kubernetes quantity notation (`500m`, `2`, `512Mi`, `4Gi`, `1Ti`) parsed to plain numbers.

Kubernetes users write resources this way; we accept exactly that grammar so a document
that works in a pod spec works here, and nothing looser that Kubernetes would reject.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_PATTERN = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Decimal:
    """Return the quantity's value in base units (bytes, or cores)."""
    if isinstance(text, bool):
        raise QuantityError(f"expected a quantity such as 512Mi, 4Gi or 500m; got {text!r}")
    if isinstance(text, int | float):
        return Decimal(str(text))
    # fullmatch on the text as given: `$` alone would accept a trailing newline, and the text is
    # echoed into postgresql.conf comments, where a newline would start a line the user never wrote.
    match = _PATTERN.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise QuantityError(f"expected a quantity such as 512Mi, 4Gi or 500m; got {text!r}")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise QuantityError(f"not a number: {text!r}") from exc
    suffix = match["suffix"]
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return number * factor


def parse_bytes(text: str | int) -> int:
    """Bytes from a memory/storage quantity; fractions of a byte round up like Kubernetes does."""
    value = parse_quantity(text)
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def parse_cpu_millis(text: str | int | float) -> int:
    """Millicores from a CPU quantity (`2` → 2000, `500m` → 500)."""
    value = parse_quantity(text) * 1000
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def format_bytes(n: int) -> str:
    """The largest binary suffix that divides n exactly: 4294967296 → `4Gi`."""
    for suffix, factor in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)
