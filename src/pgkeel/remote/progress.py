"""Waiting for a member's re-clone (`pgkeel reinit --wait`), local or remote: read from its /status alone.

Why /status and not the table: only the member knows its aside copies and its alarm. A reinit is done
when the member streams again and keeps an aside copy made at or after the request (the one this
re-clone made); it failed when a new alarm appears instead (no room for the clone, an aside slot taken).
Both the local and the remote CLI use this (they differ only in how /status is fetched).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

POLL_SECONDS = 0.5
CLOCK_SLACK = 2.0  # the member's clock and this one's may differ a little (remote); the aside is never older


def reinit_outcome(snap: dict[str, Any] | None, requested_at: float, alarm_before: str | None) -> str | None:
    """'done', an error (the member's alarm) when it failed, or None while it is still on its way."""
    if snap is None:
        return None  # its API may be busy or restarting: ask again
    alarm = snap.get("alarm")
    if alarm and alarm != alarm_before:
        return f"the re-clone did not happen: {alarm}"
    asides = [a for a in snap.get("asides") or [] if float(a.get("created") or 0) >= requested_at - CLOCK_SLACK]
    streaming = snap.get("role") == "replica" and snap.get("state") == "streaming"
    return "done" if asides and streaming else None


def wait_reinit(
    fetch: Callable[[], dict[str, Any] | None], requested_at: float, alarm_before: str | None, timeout: float
) -> dict[str, Any]:
    """The member's /status once it streams again from a fresh clone; RuntimeError if it failed, TimeoutError."""
    deadline = time.monotonic() + timeout
    snap: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        snap = fetch()
        outcome = reinit_outcome(snap, requested_at, alarm_before)
        if outcome == "done":
            assert snap is not None
            return snap
        if outcome is not None:
            raise RuntimeError(outcome)
        time.sleep(POLL_SECONDS)
    said = f"{snap.get('role')}/{snap.get('state')}, rule {snap.get('rule')}" if snap else "no answer from its API"
    raise TimeoutError(f"the member does not stream from a fresh clone after {timeout:g}s ({said}); see its agent log")
