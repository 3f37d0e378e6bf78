"""The lab's judgements: lost acknowledged writes, phantoms, split brain, outage, detection."""

from __future__ import annotations

from pgkeel.lab import checks
from pgkeel.lab.checks import Sample
from pgkeel.lab.workload import Attempt


def att(i: int, node: str | None, t: float, outcome: str = "ack", writer: str = "rw") -> Attempt:
    return Attempt(id=i, writer=writer, node=node, t_send=t - 0.005, t_done=t, outcome=outcome)


def test_lost_acked_counts_only_clean_acks_missing_from_the_final_primary() -> None:
    attempts = [att(1, "a", 1.0), att(2, "a", 1.1), att(3, "a", 1.2, "fail"), att(4, "a", 1.3, "indeterminate")]
    assert checks.lost_acked(attempts, {1}) == [2]


def test_phantoms_are_ids_never_attempted() -> None:
    attempts = [att(1, "a", 1.0), att(2, "a", 1.1, "fail")]
    assert checks.phantoms(attempts, {1, 2, 99}) == [99]


def test_clean_failover_has_no_split_brain() -> None:
    attempts = [att(1, "a", 1.0), att(2, "a", 2.0), att(3, "a", 2.5, "fail"), att(4, "b", 5.0), att(5, "b", 6.0)]
    assert checks.split_brain_windows(attempts) == []


def test_zombie_primary_acking_after_the_new_primary_is_a_split_brain_window() -> None:
    attempts = [att(1, "a", 1.0), att(2, "b", 5.0), att(3, "a", 7.0, writer="a"), att(4, "b", 8.0)]
    windows = checks.split_brain_windows(attempts)
    assert len(windows) == 1
    w = windows[0]
    assert {w.a, w.b} == {"a", "b"} and (w.start, w.end) == (5.0, 7.0)


def test_failed_attempts_do_not_open_a_window() -> None:
    attempts = [att(1, "a", 1.0), att(2, "b", 5.0), att(3, "a", 7.0, "fail")]
    assert checks.split_brain_windows(attempts) == []


def test_outage_is_the_longest_gap_from_the_last_ack_before_the_fault() -> None:
    attempts = [att(1, "a", 0.5), att(2, "a", 1.0), att(3, "b", 4.5), att(4, "b", 4.6), att(5, "x", 9.0, writer="x")]
    assert checks.outage(attempts, t_fault=1.2) == 3.5


def test_outage_is_none_when_nothing_was_acknowledged_after_the_fault() -> None:
    assert checks.outage([att(1, "a", 0.5)], t_fault=1.0) is None


def test_detection_ignores_nodes_that_cannot_read_the_store() -> None:
    samples = [
        Sample(1.5, "b", "replica", False, None, False, dcs_ok=False),
        Sample(2.0, "a", None, False, None, False),
        Sample(3.0, "b", "replica", False, None, False),
        Sample(3.5, "b", "primary", True, "b", False),
    ]
    assert checks.detection(samples, "a", t_fault=1.0) == 2.0
    assert checks.promotion(samples, "a", t_fault=1.0) == ("b", 2.5)


def test_summary_median_min_max_skip_missing() -> None:
    assert checks.summary([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert checks.summary([4.0, 1.0]) == {"median": 2.5, "min": 1.0, "max": 4.0}
    assert checks.summary([None]) == {"median": None, "min": None, "max": None}
