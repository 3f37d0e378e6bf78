"""`pgkeel reinit --wait` reads the member's /status: done once it streams with an aside copy made after the
request; failed when a new alarm appears; otherwise still waiting."""

from __future__ import annotations

from typing import Any

from pgkeel.remote.progress import reinit_outcome

ASKED = 1000.0


def snap(role: str = "replica", state: str = "streaming", created: float | None = ASKED + 3,
         alarm: str | None = None) -> dict[str, Any]:
    asides = [] if created is None else [{"path": "/d/data.aside", "bytes": 1, "created": created, "reason": "r"}]
    return {"role": role, "state": state, "asides": asides, "alarm": alarm}


def test_done_once_streaming_with_an_aside_copy_made_after_the_request() -> None:
    assert reinit_outcome(snap(), ASKED, None) == "done"


def test_waiting_while_cloning_or_when_only_an_older_copy_exists_or_the_api_is_silent() -> None:
    assert reinit_outcome(snap(role="cloning", state="stopped"), ASKED, None) is None
    assert reinit_outcome(snap(created=ASKED - 3600), ASKED, None) is None
    assert reinit_outcome(None, ASKED, None) is None


def test_a_new_alarm_is_the_failure_an_old_one_is_not() -> None:
    failed = reinit_outcome(snap(role="replica", created=None, alarm="clone does NOT fit"), ASKED, None)
    assert failed is not None and "clone does NOT fit" in failed
    assert reinit_outcome(snap(alarm="old"), ASKED, "old") == "done"
