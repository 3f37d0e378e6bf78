"""Prometheus exposition of one agent snapshot (a fresh registry per scrape: no global state)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

ROLES = ("primary", "replica", "stopped")


def render_metrics(snap: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    name = str(snap.get("name", ""))
    pg = snap.get("postgres") or {}
    labels = ["member"]

    role = Gauge("pgkeel_role", "1 for the role this member runs as", [*labels, "role"], registry=registry)
    for r in ROLES:
        role.labels(name, r).set(1 if snap.get("role") == r else 0)
    Gauge("pgkeel_is_leader", "1 when this member holds the leader lease", labels, registry=registry).labels(name).set(
        1 if snap.get("is_leader") else 0
    )
    Gauge("pgkeel_timeline", "PostgreSQL timeline", labels, registry=registry).labels(name).set(pg.get("timeline") or 0)
    Gauge(
        "pgkeel_wal_lsn_bytes",
        "WAL position (flushed on a primary, received/replayed on a replica)",
        labels,
        registry=registry,
    ).labels(name).set(pg.get("lsn") or 0)
    Gauge(
        "pgkeel_replication_lag_bytes", "Bytes behind the leader's last published position", labels, registry=registry
    ).labels(name).set(snap.get("lag_bytes") or 0)
    Gauge("pgkeel_postgres_running", "1 when the postmaster is alive", labels, registry=registry).labels(name).set(
        1 if pg.get("running") else 0
    )
    Gauge("pgkeel_dcs_reachable", "1 when the coordination store answered this loop", labels, registry=registry).labels(
        name
    ).set(1 if snap.get("dcs_ok") else 0)
    Gauge("pgkeel_loop_duration_seconds", "Duration of the last agent loop", labels, registry=registry).labels(
        name
    ).set(float(snap.get("loop_duration_s") or 0.0))
    asides = snap.get("asides") or []
    Gauge("pgkeel_aside_copies", "Data directory copies kept aside (at most 1)", labels, registry=registry).labels(
        name
    ).set(len(asides))
    Gauge("pgkeel_aside_bytes", "Bytes held by aside copies of the data directory", labels, registry=registry).labels(
        name
    ).set(sum(int(a.get("bytes") or 0) for a in asides))
    fence = Gauge(
        "pgkeel_fence", "1 for what fences this node's commits past its lease", [*labels, "kind"], registry=registry
    )
    kind = (snap.get("fence") or {}).get("kind")
    for k in ("extension", "watchdog", "none"):
        fence.labels(name, k).set(1 if kind == k else 0)
    alarm = Gauge("pgkeel_alarm", "1 while a condition needs an operator (/status alarm)", labels, registry=registry)
    alarm.labels(name).set(1 if snap.get("alarm") else 0)
    leader = Gauge(
        "pgkeel_leader", "1 for the member this node sees holding the lease", [*labels, "leader"], registry=registry
    )
    if snap.get("leader"):
        leader.labels(name, str(snap["leader"])).set(1)
    return generate_latest(registry)
