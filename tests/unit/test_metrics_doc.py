"""docs/monitoring.md lists exactly the metrics /metrics serves: names, types and labels, both ways."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pgkeel.api.metrics import BASE_LABELS, METRICS, render_metrics
from pgkeel.backup.archive_watch import ArchiveStatus
from pgkeel.backup.schedule_status import BackupResultStatus, BackupScheduleStatus, DrillStatus
from pgkeel.ha.status import AsideStatus, Counters, NodeStatus, PostgresStatus

DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
ROW = re.compile(r"^\| `(pgkeel_\w+)` \| (\w+) \| ([^|]*) \|", re.MULTILINE)


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    rows = {}
    for name, kind, labels in ROW.findall(DOC.read_text()):
        assert name not in rows, f"{name} is listed twice in {DOC}"
        rows[name] = (kind, frozenset(re.findall(r"`(\w+)`", labels)))
    return rows


def full_snapshot() -> dict[str, object]:
    """A replica with every optional field set, so that every metric has a sample."""
    return NodeStatus(
        name="pg-1",
        scope="demo",
        role="replica",
        leader="pg-0",
        postgres=PostgresStatus(
            running=True, in_recovery=True, timeline=2, lsn=300, receive_lsn=300, replay_lsn=200,
            replay_paused=True, replay_lag_seconds=4.0, version="15.8",
        ),
        lag_bytes=100,
        receive_lag_bytes=0,
        replay_lag_bytes=100,
        pending_restart=["shared_buffers"],
        asides=[AsideStatus(path="/x", bytes=10, created=0.0, reason="r")],
        counters=Counters(failovers=1, switchovers=2, start_failures=3, store_errors=4),
        archive=ArchiveStatus(backlog_bytes=2**24, max_backlog_bytes=2**27, on_backlog_full="stopArchiving",
                              archived_count=5, failed_count=1, last_archived_age_s=3.0),
        backups=BackupScheduleStatus(
            running="full on pg-1", running_since="2026-12-04T01:00:00+00:00", waiting_requests=1,
            last=BackupResultStatus(kind="diff", ok=False, member="pg-0", started="s", finished="f", duration_s=2.0,
                                    finished_epoch=2.0, error="repo unreachable"),
            last_success=BackupResultStatus(kind="full", ok=True, member="pg-0", started="s", finished="f",
                                            duration_s=9.0, finished_epoch=1.0, label="F", source="pg-1"),
            last_drill=DrillStatus(ok=False, finished="f", finished_epoch=3.0, duration_s=4.0, backup="F",
                                   recovered_lsn="0/3000000", recovered_lag_s=60.0, failure="gap"),
        ),
    ).model_dump(mode="json")


def served() -> dict[str, tuple[str, frozenset[str]]]:
    text = render_metrics(full_snapshot()).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        names = {s.name for s in family.samples}
        assert len(names) == 1, names
        labels = frozenset(k for s in family.samples for k in s.labels)
        out[names.pop()] = (family.type, labels)
    return out


def test_every_served_metric_is_documented_and_every_documented_one_is_served() -> None:
    doc, live = documented(), served()
    assert sorted(set(live) - set(doc)) == [], f"metrics missing from {DOC.name}"
    assert sorted(set(doc) - set(live)) == [], f"{DOC.name} lists metrics that are not served"
    assert doc == live, "types or labels differ between /metrics and the doc"
    assert {row.name for row in METRICS} == set(live)


def test_conventions_cluster_label_counters_total_and_info() -> None:
    live = served()
    assert all(set(BASE_LABELS) <= labels for _, labels in live.values())
    assert all(name.endswith("_total") for name, (kind, _) in live.items() if kind == "counter")
    text = render_metrics(full_snapshot()).decode()
    assert 'pgkeel_info{cluster="demo",member="pg-1",pg_version="15.8",version="' in text
    assert 'pgkeel_replay_lsn_bytes{cluster="demo",member="pg-1"} 200.0' in text
    assert 'pgkeel_start_failures_total{cluster="demo",member="pg-1"} 3.0' in text


def test_unknown_values_have_no_sample_and_starting_is_not_primary() -> None:
    text = render_metrics(NodeStatus(name="pg-1", scope="demo").model_dump(mode="json")).decode()
    assert "pgkeel_replay_lag_bytes{" not in text and "pgkeel_timeline{" not in text
    assert 'pgkeel_role{cluster="demo",member="pg-1",role="starting"} 1.0' in text
    assert 'pgkeel_role{cluster="demo",member="pg-1",role="primary"} 0.0' in text
