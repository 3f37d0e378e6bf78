"""Prometheus exposition of one agent snapshot (/status as a dict), a fresh registry per scrape: no global state.

The metrics are rows of one table, `METRICS`; docs/monitoring.md lists the same rows and a unit test
holds the two together. Every sample carries `cluster` and `member` labels; counters end in `_total`
and count since the agent started; a value that is unknown (a primary's replay position, a stopped
node's timeline) has no sample rather than a 0 that would read as "no lag".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pgkeel.ha.records import FenceKind
from pgkeel.ha.status import ROLES

Snapshot = dict[str, Any]
Samples = list[tuple[tuple[str, ...], float | None]]  # (extra label values, value); None: no sample
BASE_LABELS = ("cluster", "member")


@dataclass(frozen=True)
class MetricRow:
    name: str  # as exposed (counters end in _total)
    kind: Literal["gauge", "counter"]
    help: str
    samples: Callable[[Snapshot], Samples]
    labels: tuple[str, ...] = ()  # beyond cluster and member


def _pg(snap: Snapshot) -> Snapshot:
    return snap.get("postgres") or {}


def _one(value: Any) -> Samples:
    return [((), None if value is None else float(value))]


def _flag(value: Any) -> Samples:
    return [((), 1.0 if value else 0.0)]


def _archive(key: str, flag: bool = False) -> Callable[[Snapshot], Samples]:
    """A field of /status archive: no sample where there is none (a replica, or no spec.backup)."""

    def samples(snap: Snapshot) -> Samples:
        archive = snap.get("archive")
        if archive is None:
            return []
        value = archive.get(key)
        return _flag(value) if flag else _one(value)

    return samples


def _backups(value: Callable[[Snapshot], Any]) -> Callable[[Snapshot], Samples]:
    """A value of /status backups: only the leader's agent, which runs the schedule, has one."""

    def samples(snap: Snapshot) -> Samples:
        backups = snap.get("backups")
        return [] if backups is None else _one(value(backups))

    return samples


def _counter(key: str) -> Callable[[Snapshot], Samples]:
    return lambda snap: _one((snap.get("counters") or {}).get(key, 0))


def _each(values: tuple[str, ...], current: Any) -> Samples:
    return [((v,), 1.0 if current == v else 0.0) for v in values]


METRICS: tuple[MetricRow, ...] = (
    MetricRow(
        "pgkeel_info",
        "gauge",
        "Always 1: pgkeel's version and the PostgreSQL server version (empty until postgres answers)",
        lambda s: [((str(s.get("version") or ""), str(_pg(s).get("version") or "")), 1.0)],
        ("version", "pg_version"),
    ),
    MetricRow(
        "pgkeel_role", "gauge", "1 for the role postgres runs as", lambda s: _each(ROLES, s.get("role")), ("role",)
    ),
    MetricRow(
        "pgkeel_is_leader", "gauge", "1 when this member holds the leader lease", lambda s: _flag(s.get("is_leader"))
    ),
    MetricRow(
        "pgkeel_paused",
        "gauge",
        "1 while maintenance mode is in force: no automatic failover (`pgkeel pause`)",
        lambda s: _flag(s.get("paused")),
    ),
    MetricRow(
        "pgkeel_failsafe_serving",
        "gauge",
        "1 while this primary serves writes through a store outage on every member's promise (failsafe)",
        lambda s: _flag(s.get("failsafe_serving_s") is not None),
    ),
    MetricRow(
        "pgkeel_leader",
        "gauge",
        "1 for the member this node sees holding the lease (no sample: nobody)",
        lambda s: [((str(s["leader"]),), 1.0)] if s.get("leader") else [],
        ("leader",),
    ),
    MetricRow(
        "pgkeel_postgres_running", "gauge", "1 when the postmaster is alive", lambda s: _flag(_pg(s).get("running"))
    ),
    MetricRow(
        "pgkeel_dcs_reachable",
        "gauge",
        "1 when the coordination store answered this loop",
        lambda s: _flag(s.get("dcs_ok")),
    ),
    MetricRow("pgkeel_timeline", "gauge", "PostgreSQL timeline", lambda s: _one(_pg(s).get("timeline"))),
    MetricRow(
        "pgkeel_wal_lsn_bytes",
        "gauge",
        "WAL position as an integer: flushed on a primary, max(received, replayed) on a replica",
        lambda s: _one(_pg(s).get("lsn")),
    ),
    MetricRow(
        "pgkeel_receive_lsn_bytes",
        "gauge",
        "Replica: WAL position received and flushed, as an integer",
        lambda s: _one(_pg(s).get("receive_lsn")),
    ),
    MetricRow(
        "pgkeel_replay_lsn_bytes",
        "gauge",
        "Replica: WAL position replayed (what reads see), as an integer",
        lambda s: _one(_pg(s).get("replay_lsn")),
    ),
    MetricRow(
        "pgkeel_receive_lag_bytes",
        "gauge",
        "Replica: bytes behind the leader's published position in what it received",
        lambda s: _one(s.get("receive_lag_bytes")),
    ),
    MetricRow(
        "pgkeel_replay_lag_bytes",
        "gauge",
        "Replica: bytes behind the leader's published position in what it replayed",
        lambda s: _one(s.get("replay_lag_bytes")),
    ),
    MetricRow(
        "pgkeel_replay_lag_seconds",
        "gauge",
        "Replica: age of the last replayed commit while received WAL waits to be replayed (0: caught up)",
        lambda s: _one(_pg(s).get("replay_lag_seconds")),
    ),
    MetricRow(
        "pgkeel_replay_paused",
        "gauge",
        "Replica: 1 while WAL replay is paused (pg_wal_replay_pause)",
        lambda s: _one(None if _pg(s).get("replay_paused") is None else int(bool(_pg(s)["replay_paused"]))),
    ),
    MetricRow(
        "pgkeel_pending_restart_parameters",
        "gauge",
        "Parameters changed in the configuration files that take effect only after a restart",
        lambda s: _one(len(s.get("pending_restart") or [])),
    ),
    MetricRow(
        "pgkeel_auto_conf_drift_parameters",
        "gauge",
        "Parameters set by ALTER SYSTEM on this node only; /status auto_conf_drift names them",
        lambda s: _one(len(s.get("auto_conf_drift") or [])),
    ),
    MetricRow(
        "pgkeel_consecutive_start_failures",
        "gauge",
        "Failed starts of postgres (or of the bootstrap) since it last answered; /status start.error says why",
        lambda s: _one((s.get("start") or {}).get("failures", 0)),
    ),
    MetricRow(
        "pgkeel_failovers_total",
        "counter",
        "Elections this node won and promoted in (including forced failovers)",
        _counter("failovers"),
    ),
    MetricRow(
        "pgkeel_switchovers_total",
        "counter",
        "Switchovers this node handed over as the primary",
        _counter("switchovers"),
    ),
    MetricRow("pgkeel_start_failures_total", "counter", "Starts of postgres that failed", _counter("start_failures")),
    MetricRow(
        "pgkeel_store_errors_total",
        "counter",
        "Agent loops in which the coordination store could not be read",
        _counter("store_errors"),
    ),
    MetricRow(
        "pgkeel_loop_duration_seconds",
        "gauge",
        "Duration of the last agent loop",
        lambda s: _one(s.get("loop_duration_s") or 0.0),
    ),
    MetricRow(
        "pgkeel_aside_copies",
        "gauge",
        "Data directory copies kept aside (at most 1)",
        lambda s: _one(len(s.get("asides") or [])),
    ),
    MetricRow(
        "pgkeel_aside_bytes",
        "gauge",
        "Bytes held by aside copies of the data directory",
        lambda s: _one(sum(int(a.get("bytes") or 0) for a in s.get("asides") or [])),
    ),
    MetricRow(
        "pgkeel_fence",
        "gauge",
        "1 for what fences this node's commits past its lease",
        lambda s: _each(tuple(FenceKind), (s.get("fence") or {}).get("kind")),
        ("kind",),
    ),
    MetricRow(
        "pgkeel_archive_backlog_bytes",
        "gauge",
        "Primary: WAL waiting for the archive (pg_wal/archive_status/*.ready), in bytes",
        _archive("backlog_bytes"),
    ),
    MetricRow(
        "pgkeel_archive_backlog_limit_bytes",
        "gauge",
        "Primary: spec.backup.archive.maxBacklog, the bound on that backlog",
        _archive("max_backlog_bytes"),
    ),
    MetricRow(
        "pgkeel_archive_last_archived_age_seconds",
        "gauge",
        "Primary: seconds since a WAL segment was last archived (no sample: never)",
        _archive("last_archived_age_s"),
    ),
    MetricRow(
        "pgkeel_archive_failed_count",
        "gauge",
        "Primary: pg_stat_archiver.failed_count, failed archive attempts since the statistics were reset",
        _archive("failed_count"),
    ),
    MetricRow(
        "pgkeel_archive_failing", "gauge", "Primary: 1 while the last archive attempt failed", _archive("failing", True)
    ),
    MetricRow(
        "pgkeel_archive_gap",
        "gauge",
        "Primary: 1 while point-in-time recovery is broken (stopArchiving dropped WAL) until a new full backup",
        lambda s: [] if s.get("archive") is None else _flag(s["archive"].get("gap_since") is not None),
    ),
    MetricRow(
        "pgkeel_archive_writes_stopped",
        "gauge",
        "Primary: 1 while writes are stopped because the archive backlog reached its bound (stopWrites)",
        _archive("writes_stopped", True),
    ),
    MetricRow(
        "pgkeel_backup_last_success_timestamp_seconds",
        "gauge",
        "Leader: when the latest successful base backup finished (epoch seconds; no sample: none yet)",
        _backups(lambda b: (b.get("last_success") or {}).get("finished_epoch")),
    ),
    MetricRow(
        "pgkeel_backup_last_duration_seconds",
        "gauge",
        "Leader: how long the latest successful base backup took",
        _backups(lambda b: (b.get("last_success") or {}).get("duration_s")),
    ),
    MetricRow(
        "pgkeel_backup_last_failed",
        "gauge",
        "Leader: 1 when the latest base backup run failed (pgkeel status shows why)",
        _backups(lambda b: None if b.get("last") is None else float(not b["last"]["ok"])),
    ),
    MetricRow(
        "pgkeel_backup_running",
        "gauge",
        "Leader: 1 while a base backup runs",
        _backups(lambda b: float(b.get("running") is not None)),
    ),
    MetricRow(
        "pgkeel_backup_requests_waiting",
        "gauge",
        "Leader: on-demand backups (pgkeel backup now) queued behind the one running",
        _backups(lambda b: b.get("waiting_requests")),
    ),
    MetricRow(
        "pgkeel_drill_success",
        "gauge",
        "Leader: 1 when the newest restore drill was green, 0 when red (no sample: none yet)",
        _backups(lambda b: None if b.get("last_drill") is None else float(b["last_drill"]["ok"])),
    ),
    MetricRow(
        "pgkeel_drill_duration_seconds",
        "gauge",
        "Leader: how long the newest restore drill took (restore, replay, checks)",
        _backups(lambda b: (b.get("last_drill") or {}).get("duration_s")),
    ),
    MetricRow(
        "pgkeel_drill_last_run_timestamp_seconds",
        "gauge",
        "Leader: when the newest restore drill finished (epoch seconds)",
        _backups(lambda b: (b.get("last_drill") or {}).get("finished_epoch")),
    ),
    MetricRow(
        "pgkeel_drill_recovered_lag_seconds",
        "gauge",
        "Leader: how far behind the drill's start its restored copy was (the recovery point it proved)",
        _backups(lambda b: (b.get("last_drill") or {}).get("recovered_lag_s")),
    ),
    MetricRow(
        "pgkeel_alarm",
        "gauge",
        "1 while a condition needs an operator (/status alarm)",
        lambda s: _flag(s.get("alarm")),
    ),
)


class _SnapshotCollector:
    """Yields the table's families for one snapshot (what CollectorRegistry.register expects)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        base = (str(self.snap.get("scope", "")), str(self.snap.get("name", "")))
        for row in METRICS:
            labels = [*BASE_LABELS, *row.labels]
            family: GaugeMetricFamily | CounterMetricFamily
            if row.kind == "counter":
                family = CounterMetricFamily(row.name, row.help, labels=labels)
            else:
                family = GaugeMetricFamily(row.name, row.help, labels=labels)
            for extra, value in row.samples(self.snap):
                if value is not None:
                    family.add_metric([*base, *extra], value)
            yield family


def render_metrics(snap: Snapshot) -> bytes:
    registry = CollectorRegistry()
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry)
