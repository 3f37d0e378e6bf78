"""Patroni-compatible health probes: (path, query, the agent's snapshot) -> (status, body), pure.

Why: a load balancer configured for Patroni (HAProxy `option httpchk OPTIONS /primary`, a `/replica?lag=16MB`
check, Kubernetes probes) must work against pgkeel unchanged, so paths, the 200/503 answers and the
`lag` / `replication_state` / `tag_*` filters follow Patroni's `patroni/api.py`. Where pgkeel differs it
says so here: there are no standby clusters (`/standby-leader` is always 503) and no member tags (any
`tag_*` filter is 503, as Patroni answers for a tag the member lacks); the synchronous set is quorum
mode's (`/sync` and `/quorum` both name it); a query Patroni would silently ignore (bad `lag`, unknown
key) is refused with 400 naming it, so a typo cannot quietly route to a lagging replica.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from pgkeel.ha.status import NodeStatus


class Probe(StrEnum):
    PRIMARY = "primary"
    LEADER = "leader"
    STANDBY_LEADER = "standby-leader"
    REPLICA = "replica"
    READ_ONLY = "read-only"
    SYNC = "sync"
    ASYNC = "async"
    READ_ONLY_SYNC = "read-only-sync"
    HEALTH = "health"
    LIVENESS = "liveness"
    READINESS = "readiness"


# Every probe path, Patroni's aliases included; any other path is not a probe.
ROUTES: dict[str, Probe] = {
    "/": Probe.PRIMARY,
    "/primary": Probe.PRIMARY,
    "/master": Probe.PRIMARY,
    "/read-write": Probe.PRIMARY,
    "/leader": Probe.LEADER,
    "/standby-leader": Probe.STANDBY_LEADER,
    "/standby_leader": Probe.STANDBY_LEADER,
    "/replica": Probe.REPLICA,
    "/read-only": Probe.READ_ONLY,
    "/sync": Probe.SYNC,
    "/synchronous": Probe.SYNC,
    "/quorum": Probe.SYNC,
    "/async": Probe.ASYNC,
    "/asynchronous": Probe.ASYNC,
    "/read-only-sync": Probe.READ_ONLY_SYNC,
    "/read-only-synchronous": Probe.READ_ONLY_SYNC,
    "/read-only-quorum": Probe.READ_ONLY_SYNC,
    "/health": Probe.HEALTH,
    "/liveness": Probe.LIVENESS,
    "/readiness": Probe.READINESS,
}

# When each probe answers 200 (the OpenAPI description is generated from this).
SUMMARIES: dict[Probe, str] = {
    Probe.PRIMARY: "This node holds the leader lease and its PostgreSQL runs as the primary.",
    Probe.LEADER: "This node holds the leader lease (whatever its PostgreSQL is doing).",
    Probe.STANDBY_LEADER: "Always 503: pgkeel has no standby clusters, so no node is a standby leader.",
    Probe.REPLICA: "A running replica that does not hold the lease, may stream (no rewind or re-clone "
    "pending, not refused) and passes `lag` / `replication_state`.",
    Probe.READ_ONLY: "The primary, or a replica as /replica.",
    Probe.SYNC: "A replica as /replica that is in the leader's synchronous set (quorum mode).",
    Probe.ASYNC: "A replica as /replica that is not in the synchronous set.",
    Probe.READ_ONLY_SYNC: "The primary, or a replica as /sync.",
    Probe.HEALTH: "PostgreSQL is running and answering (as primary or replica).",
    Probe.LIVENESS: "The agent loop is alive, or maintenance mode is on (does not depend on PostgreSQL).",
    Probe.READINESS: "The primary, or a replica that streams (within `lag`, measured per `mode`, when given).",
}

_REPLICA_FILTERS = frozenset({"lag", "replication_state"})
# The query keys each probe takes; `tag_<name>` is allowed wherever "tag_" is listed.
ACCEPTED: dict[Probe, frozenset[str]] = {
    Probe.PRIMARY: frozenset({"tag_"}),
    Probe.LEADER: frozenset({"tag_"}),
    Probe.STANDBY_LEADER: frozenset({"tag_"}),
    Probe.REPLICA: _REPLICA_FILTERS | {"tag_"},
    Probe.READ_ONLY: _REPLICA_FILTERS | {"tag_"},
    Probe.SYNC: _REPLICA_FILTERS | {"tag_"},
    Probe.ASYNC: _REPLICA_FILTERS | {"tag_"},
    Probe.READ_ONLY_SYNC: _REPLICA_FILTERS | {"tag_"},
    Probe.HEALTH: frozenset({"tag_"}),
    Probe.LIVENESS: frozenset(),
    Probe.READINESS: frozenset({"lag", "mode"}),
}
# Patroni matches tags only on these; on the lease-holder probes it accepts and ignores them.
_TAGGED = frozenset(Probe) - {Probe.PRIMARY, Probe.LEADER, Probe.STANDBY_LEADER, Probe.LIVENESS, Probe.READINESS}

# Patroni's (and PostgreSQL's) size units: case-sensitive, powers of 1024.
UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"(\d{1,20})(B|kB|MB|GB|TB)?")


class QueryError(ValueError):
    """A probe query that cannot be honoured; the message names the key and what it accepts."""


def parse_lag(text: str) -> int:
    """Bytes from `lag`: an integer (bytes) or one with a unit, `16MB`, `1GB` (Patroni's parse_int with 'B')."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise QueryError(
            f"lag: {text!r} is not a size; give bytes (1048576) or a whole number with a unit "
            f"{', '.join(UNITS)} (16MB, 1GB), case as written"
        )
    return int(match[1]) * UNITS[match[2] or "B"]


@dataclass(frozen=True)
class Query:
    lag: int | None = None  # bytes of replay lag allowed; None: no limit
    replication_state: str | None = None  # Patroni's: "streaming" (pgkeel has no archive recovery)
    mode: str = "apply"  # readiness: lag of replayed (apply) or received (write) WAL
    tags: dict[str, str] = field(default_factory=dict)


def parse_query(probe: Probe, raw: str) -> Query:
    """The probe's filters from a raw query string; QueryError for an unknown, repeated or bad key."""
    accepted = ACCEPTED[probe]
    values: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        tag = key.startswith("tag_") and len(key) > 4
        known = (tag and "tag_" in accepted) or (not key.startswith("tag_") and key in accepted)
        if not known:
            names = sorted(k if k != "tag_" else "tag_<name>" for k in accepted)
            raise QueryError(
                f"{key!r} is not a filter of this probe; it takes {', '.join(names) if names else 'none'}"
            )
        if key in values:
            raise QueryError(f"{key} is given twice; give it once")
        values[key] = value
    mode = values.pop("mode", "apply")
    if mode not in ("apply", "write"):
        raise QueryError(f"mode: {mode!r} is not one of apply (replayed WAL), write (received WAL)")
    lag = values.pop("lag", None)
    state = values.pop("replication_state", None)
    if state == "":
        raise QueryError("replication_state is empty; give the state to require, e.g. streaming")
    return Query(lag=None if lag is None else parse_lag(lag), replication_state=state, mode=mode, tags=values)


@dataclass(frozen=True)
class Answer:
    status: HTTPStatus
    body: dict[str, Any]


def replay_lag(snap: NodeStatus) -> int | None:
    """Bytes this replica's replay is behind the leader's last known position: the leader's published
    position or what this replica already received, whichever is further (Patroni's leader optime)."""
    pg = snap.postgres
    if pg.replay_lsn is None:
        return None
    known = [snap.replay_lag_bytes, None if pg.receive_lsn is None else max(0, pg.receive_lsn - pg.replay_lsn)]
    lags = [lag for lag in known if lag is not None]
    return max(lags) if lags else None


def receive_lag(snap: NodeStatus) -> int | None:
    """Bytes this replica has not yet received of the leader's last known position."""
    if snap.receive_lag_bytes is not None:
        return snap.receive_lag_bytes
    return 0 if snap.postgres.receive_lsn is not None else None


def replication_state(snap: NodeStatus) -> str | None:
    """Patroni's replication_state: "streaming" for a replica with a walreceiver streaming, else none."""
    return "streaming" if snap.role == "replica" and snap.postgres.streaming else None


def _within(lag: int | None, limit: int | None) -> bool:
    """Inside the limit; a lag that cannot be told passes only when no limit was asked for."""
    return limit is None or (lag is not None and lag <= limit)


def _is_primary(snap: NodeStatus) -> bool:
    return snap.is_leader and snap.postgres.running and snap.postgres.in_recovery is False


def _is_replica(snap: NodeStatus, query: Query) -> bool:
    """Patroni's replica_status_code: a replica in state running, not excluded, not lagging, in the state asked."""
    pg = snap.postgres
    serving = pg.running and pg.in_recovery is True and not snap.is_leader  # a lease holder is promoting
    if not serving or snap.refused is not None or not snap.candidate:
        return False
    if query.replication_state is not None and replication_state(snap) != query.replication_state:
        return False
    return _within(replay_lag(snap), query.lag)


def _ready(snap: NodeStatus, query: Query) -> bool:
    if _is_primary(snap):
        return True
    pg = snap.postgres
    if not (pg.running and pg.in_recovery is True and pg.streaming):
        return False
    return _within(receive_lag(snap) if query.mode == "write" else replay_lag(snap), query.lag)


def decide(probe: Probe, query: Query, snap: NodeStatus, loop_alive: bool) -> bool:
    """Whether the probe answers 200 (the table of Patroni's do_GET, for what pgkeel has)."""
    replica = _is_replica(snap, query)
    match probe:
        case Probe.PRIMARY:
            return _is_primary(snap)
        case Probe.LEADER:
            return snap.is_leader
        case Probe.STANDBY_LEADER:
            return False
        case Probe.REPLICA:
            return replica
        case Probe.READ_ONLY:
            return _is_primary(snap) or replica
        case Probe.SYNC:
            return snap.dcs_ok and snap.synchronous and replica
        case Probe.ASYNC:
            return snap.dcs_ok and not snap.synchronous and replica
        case Probe.READ_ONLY_SYNC:
            return _is_primary(snap) or (snap.dcs_ok and snap.synchronous and replica)
        case Probe.HEALTH:
            return snap.role in ("primary", "replica")
        case Probe.LIVENESS:
            return loop_alive or snap.paused
        case Probe.READINESS:
            return _ready(snap, query)


def body(snap: NodeStatus, ok: bool) -> dict[str, Any]:
    """A subset of /status in Patroni's shape (`xlog`, `replication_state`, `sync_standby`), plus `ok`."""
    pg = snap.postgres
    out: dict[str, Any] = {
        "ok": ok,
        "name": snap.name,
        "role": snap.role,
        "state": snap.state,
        "leader": snap.leader,
        "is_leader": snap.is_leader,
        "cluster_unlocked": snap.leader is None,
        "dcs_ok": snap.dcs_ok,
        "timeline": pg.timeline,
    }
    if snap.role == "primary":
        out["xlog"] = {"location": pg.lsn}
    elif snap.role == "replica":
        out["xlog"] = {
            "received_location": pg.receive_lsn,
            "replayed_location": pg.replay_lsn,
            "paused": pg.replay_paused,
        }
        out["lag_bytes"] = replay_lag(snap)
        out["replication_state"] = replication_state(snap)
        out["sync_standby"] = snap.synchronous
    return out


def answer(path: str, raw_query: str, snap: NodeStatus, loop_alive: bool) -> Answer | None:
    """The probe's answer, or None when `path` is not a probe."""
    probe = ROUTES.get(path)
    if probe is None:
        return None
    try:
        query = parse_query(probe, raw_query)
    except QueryError as exc:
        return Answer(HTTPStatus.BAD_REQUEST, {"error": str(exc), "reason": "bad-query"})
    ok = decide(probe, query, snap, loop_alive)
    if ok and query.tags and probe in _TAGGED:
        ok = False  # pgkeel members carry no tags: Patroni answers 503 for a tag the member lacks
    return Answer(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body(snap, ok))
