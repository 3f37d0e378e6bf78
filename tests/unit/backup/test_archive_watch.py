"""The archive backlog decision (pgkeel.backup.archive_watch.judge), the WAL budget that includes it, and the
document's spec.backup.archive: pure, on built samples."""

from __future__ import annotations

from typing import Any

import pytest

from pgkeel.backup.archive_watch import Action, ArchivePolicy, ArchiverSample, WatchState, judge
from pgkeel.backup.pgbackrest_conf import ConfPaths, render_conf
from pgkeel.document import SpecError, parse_bytes, parse_cluster
from pgkeel.pgconf import tuning
from pgkeel.pgconf.validate import check_parameters

SEG = 16 * 2**20
BOUND = 6 * SEG
NOW = 1_800_000_000.0


def sample(ready: int, *, failing: bool = True, read_only: bool = False) -> ArchiverSample:
    return ArchiverSample(
        ready_segments=ready, segment_bytes=SEG, archived_count=10, failed_count=3 if failing else 0,
        last_archived_wal="000000010000000000000009", last_archived_age=40.0,
        last_failed_wal="00000001000000000000000A" if failing else None, last_failed_age=1.0 if failing else None,
        read_only_by_agent=read_only,
    )


STOP_ARCHIVING = ArchivePolicy(BOUND, "stopArchiving")
STOP_WRITES = ArchivePolicy(BOUND, "stopWrites")


def test_a_healthy_archive_is_ok_and_does_nothing() -> None:
    verdict = judge(sample(1, failing=False), STOP_WRITES, WatchState(), NOW)
    assert verdict.action is Action.NONE and verdict.state == WatchState()
    assert verdict.status.line.startswith("archiving ok: backlog 16 MiB of 96 MiB")
    assert not verdict.status.failing and verdict.status.backlog_bytes == SEG


def test_a_failing_archive_below_the_bound_is_reported_but_not_acted_on() -> None:
    verdict = judge(sample(4), STOP_WRITES, WatchState(), NOW)
    assert verdict.action is Action.NONE and not verdict.status.writes_stopped
    assert verdict.status.failing
    assert verdict.status.line.startswith("archiving FAILING: backlog 64 MiB of 96 MiB")


def test_stop_writes_when_one_more_segment_would_pass_the_bound() -> None:
    assert judge(sample(4), STOP_WRITES, WatchState(), NOW).action is Action.NONE
    verdict = judge(sample(6), STOP_WRITES, WatchState(), NOW)
    assert verdict.action is Action.STOP_WRITES and verdict.status.writes_stopped
    assert verdict.status.line.startswith("WRITES STOPPED: archive backlog 96 MiB of 96 MiB")


def test_stopped_writes_resume_only_at_half_the_bound() -> None:
    assert judge(sample(6, read_only=True), STOP_WRITES, WatchState(), NOW).action is Action.NONE
    held = judge(sample(4, failing=False, read_only=True), STOP_WRITES, WatchState(), NOW)
    assert held.action is Action.NONE and held.status.writes_stopped  # 64 MiB > 48 MiB: no flapping
    resumed = judge(sample(3, failing=False, read_only=True), STOP_WRITES, WatchState(), NOW)
    assert resumed.action is Action.RESUME_WRITES and not resumed.status.writes_stopped


def test_stop_archiving_never_stops_writes_and_opens_a_gap_at_the_bound() -> None:
    verdict = judge(sample(6), STOP_ARCHIVING, WatchState(), NOW)
    assert verdict.action is Action.NONE
    assert verdict.state == WatchState(gap_since=NOW, gap_wal="000000010000000000000009")
    assert verdict.status.gap_since == NOW
    assert "ARCHIVING STOPPED" in verdict.status.line and "point-in-time recovery broken since" in verdict.status.line


def test_the_gap_stays_open_until_a_full_backup_started_after_it_on_a_healthy_archive() -> None:
    gap = judge(sample(6), STOP_ARCHIVING, WatchState(), NOW).state
    later = NOW + 60
    assert judge(sample(0, failing=False), STOP_ARCHIVING, gap, later).state == gap  # drained: still a gap
    assert judge(sample(0, failing=False), STOP_ARCHIVING, gap, later, NOW - 10).state == gap  # backup before it
    assert judge(sample(2), STOP_ARCHIVING, gap, later, NOW + 30).state == gap  # still failing
    closed = judge(sample(0, failing=False), STOP_ARCHIVING, gap, later, NOW + 30)
    assert closed.state == WatchState() and closed.status.line.startswith("archiving ok")


def test_switching_the_document_to_stop_archiving_gives_writes_back() -> None:
    assert judge(sample(0, read_only=True), STOP_ARCHIVING, WatchState(), NOW).action is Action.RESUME_WRITES


def _doc(backup: dict[str, Any] | None, size: str = "10Gi", parameters: dict[str, Any] | None = None) -> Any:
    spec: dict[str, Any] = {"storage": {"size": size}, "postgres": {"parameters": parameters or {}}}
    if backup is not None:
        spec["backup"] = {"repositories": [{"volume": {"path": "/var/lib/pgbackrest"}}], **backup}
    return parse_cluster({"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster",
                          "metadata": {"name": "db"}, "spec": spec})


def _sizes(cluster: Any) -> dict[str, str]:
    return {t.name: t.value for t in tuning.wal_budget(tuning.inputs_for(cluster))}


def test_the_backlog_bound_comes_out_of_the_slots_share_so_the_budget_stays_half_the_volume() -> None:
    without, default, explicit = _doc(None), _doc({}), _doc({"archive": {"maxBacklog": "1Gi"}})
    assert default.spec.archive_backlog_bytes == 1024 * 2**20  # a tenth of 10Gi, whole segments
    assert explicit.spec.archive_backlog_bytes == 2**30
    assert _sizes(without)["max_slot_wal_keep_size"] == "2GB"
    assert _sizes(default)["max_slot_wal_keep_size"] == "1GB"
    assert _sizes(explicit)["max_slot_wal_keep_size"] == "1GB"
    assert _sizes(_doc({"archive": {"maxBacklog": "2000Mi"}}))["max_slot_wal_keep_size"] == "48MB"
    for cluster in (without, default, _doc({"archive": {"maxBacklog": "2000Mi"}})):
        inp = tuning.inputs_for(cluster)
        total = sum(parse_bytes(t.value.replace("B", "i")) for t in tuning.wal_budget(inp)) + inp.archive_backlog
        assert total <= tuning.wal_budget_limit(inp.volume)


def test_user_wal_sizes_that_leave_no_room_for_the_backlog_are_refused_naming_it() -> None:
    _, errors = check_parameters(_doc({"archive": {"maxBacklog": "1Gi"}}, parameters={"max_wal_size": "4GB"}))
    assert errors and "spec.backup.archive.maxBacklog 1GB = 7GB" in errors[0]
    assert "enlarge spec.storage.size" in errors[0]
    _, fine = check_parameters(_doc(None, parameters={"max_wal_size": "2GB"}))
    assert fine == []


@pytest.mark.parametrize("size", ["16Mi", "3Gi", "lots"])
def test_a_backlog_bound_outside_the_share_is_refused_with_the_range(size: str) -> None:
    with pytest.raises(SpecError, match=r"maxBacklog") as err:
        _doc({"archive": {"maxBacklog": size}})
    assert size == "lots" or "32Mi … 2016Mi" in str(err.value)


def test_on_backlog_full_names_its_choices() -> None:
    with pytest.raises(SpecError, match=r"spec.backup.archive.onBacklogFull: .*stopArchiving.*stopWrites"):
        _doc({"archive": {"onBacklogFull": "panic"}})


def test_stop_archiving_is_enforced_by_pgbackrest_and_stop_writes_never_drops(tmp_path: Any) -> None:
    paths = ConfPaths(tmp_path / "log", tmp_path / "lock")
    stop_archiving = _doc({"archive": {"maxBacklog": "512Mi"}})
    stop_writes = _doc({"archive": {"onBacklogFull": "stopWrites"}})
    assert stop_archiving.spec.backup is not None and stop_writes.spec.backup is not None
    text = render_conf("db", stop_archiving.spec.backup, paths, stop_archiving.spec.archive_backlog_bytes)
    assert f"archive-push-queue-max={512 * 2**20}\n" in text
    text = render_conf("db", stop_writes.spec.backup, paths, stop_writes.spec.archive_backlog_bytes)
    assert "archive-push-queue-max" not in text
