"""OpenAPI 3 description of the node API (served at `GET /openapi.json`).

It is the contract the fuzz tests hold the server to: every answer, to any request however
malformed, has a status listed here. Read-only endpoints are open (probes, load balancers);
mutating ones need `Authorization: Bearer <cluster API token>`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

from pgkeel.api.bodies import (
    BackupBody,
    CancelSwitchoverBody,
    FailoverBody,
    FailsafeBody,
    MembershipBody,
    PauseBody,
    ReinitBody,
    ReloadBody,
    RestartBody,
    ResumeBody,
    SwitchoverBody,
)
from pgkeel.api.probes import ACCEPTED, ROUTES, SUMMARIES, UNITS
from pgkeel.ha.status import NodeStatus
from pgkeel.ha.switchover_request import Refusal

MAX_BODY = 16 * 1024  # the largest request body the server reads

# A refused switchover/failover: 503 when the cluster has no leader to hand over from, else 409.
REFUSAL_STATUS: dict[Refusal, HTTPStatus] = {
    reason: HTTPStatus.SERVICE_UNAVAILABLE if reason is Refusal.NO_LEADER else HTTPStatus.CONFLICT
    for reason in Refusal
}
# Every `reason` an error body may carry.
ERROR_REASONS = sorted([*(str(r) for r in Refusal), "bad-body", "bad-query", "leader-restart", "no-backup",
                        "reinit-refused", "repository-unreachable", "store-unreachable"])


def _status_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """NodeStatus as OpenAPI components: the /status contract is generated, never hand-kept."""
    schema = NodeStatus.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return schema, definitions


_STATUS, _STATUS_DEFS = _status_schema()


def _body_schema(model: type[BaseModel], note: str) -> dict[str, Any]:
    """A request body schema from its strict model (additionalProperties: false), so they cannot drift."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema["description"] = (f"{note} Unknown keys are refused (400); so is Patroni's `scheduled_at` (not supported: "
                             "schedule a switchover with `at`, epoch seconds).")
    return schema


# Probes (pgkeel.api.probes, Patroni's paths and codes): 200 when the node is what the path asks, 503 otherwise.
PROBES = {path: SUMMARIES[probe] for path, probe in ROUTES.items()}
MUTATING = (
    "/switchover", "/failover", "/pause", "/resume", "/restart", "/reload", "/failsafe", "/switchover/cancel",
    "/reinit", "/membership", "/backup",
)

# What the HTTP layer itself may answer to any request it cannot parse, before routing:
# bad request line or headers, URI over 64 KiB, more than 100 headers, unknown method,
# unsupported HTTP version.
TRANSPORT_STATUSES = frozenset({400, 414, 431, 501, 505})
# A known method on an unknown path.
UNROUTED_STATUSES = frozenset({404})

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# The probe query parameters (pgkeel.api.probes.parse_query), as OpenAPI parameters.
_QUERY = {
    "lag": f"Most bytes of lag allowed: bytes, or a whole number with a unit {', '.join(UNITS)} (16MB).",
    "replication_state": "Only a replica in this state (`streaming`).",
    "mode": "Readiness lag of replayed (`apply`, the default) or received (`write`) WAL.",
}


def _query_parameters(path: str) -> list[dict[str, Any]]:
    accepted = ACCEPTED[ROUTES[path]]
    params = [
        {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
        for name, text in _QUERY.items()
        if name in accepted
    ]
    if "tag_" in accepted:
        params.append({"name": "tag_<name>", "in": "query", "required": False, "schema": {"type": "string"},
                       "description": "Patroni's tag filter; pgkeel members carry no tags, so any makes it 503."})
    return params


def _probe(path: str, summary: str) -> dict[str, Any]:
    probe = {"$ref": "#/components/schemas/Probe"}
    bad = _json(_ERROR, "A query key this probe does not take, given twice, or a bad value (named, with the fix).")
    item = _read(summary, {"200": _json(probe, "Yes."), "503": _json(probe, "No."), "400": bad})
    for op in item.values():
        op["parameters"] = _query_parameters(path)
    return item


def _read(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    """An open, read-only endpoint: GET; HEAD with the same status and headers but no body; OPTIONS with the
    same status and an empty body (what HAProxy's `option httpchk OPTIONS /primary` reads)."""
    op = {"summary": summary, "security": [], "responses": responses}
    return {"get": op, "head": dict(op), "options": dict(op)}


_BAD_BODY = "Body is not a JSON object, has an unknown key or a wrong type."
_STORE_UNREACHABLE = "The coordination store is unreachable."


def _post(summary: str, body_schema: str, responses: dict[str, Any], bad_body: str = _BAD_BODY) -> dict[str, Any]:
    """An authenticated POST with an optional JSON body: `responses` are the endpoint's own answers; the
    refusals every such endpoint shares (400 `bad_body`, 401, 403, 413) are added, and codes listed in order."""
    shared = {
        "400": _json(_ERROR, bad_body),
        "401": _json(_ERROR, "Missing or wrong bearer token."),
        "403": _json(_ERROR, "No API token is configured on this node: mutating endpoints are disabled."),
        "413": _json(_ERROR, f"Body larger than {MAX_BODY} bytes (it is not read)."),
    }
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body_schema}"}}},
            },
            "responses": dict(sorted({**shared, **responses}.items())),
        }
    }


def _mutating(summary: str, body_schema: str) -> dict[str, Any]:
    """A switchover or failover request: recorded in the store (202) or refused at once."""
    bad_body = (
        f"Body is not a JSON object of at most {MAX_BODY} bytes, has an unknown key (named, with the "
        "accepted ones), a wrong type, both `to` and `candidate`, or `scheduled_at` (not supported)."
    )
    return _post(summary, body_schema, {
        "202": _json({"$ref": "#/components/schemas/Accepted"}, "Request recorded in the coordination store."),
        "409": _json(
            _ERROR,
            "Refused, nothing recorded: unknown member, `leader` is not the leader, the target is already "
            "the leader, is not a streaming replica (or, forced, not running), no replica can take over, or "
            "`at` is in the past, more than 7 days ahead or given with `force` (`bad-time`).",
        ),
        "503": _json(
            _ERROR, "No leader holds the lease (use /failover with force), or the coordination store is "
            "unreachable."
        ),
    }, bad_body)


def _maintenance(summary: str, body_schema: str) -> dict[str, Any]:
    """Pause or resume: a cluster-wide value written to the store."""
    return _post(summary, body_schema, {
        "200": _json({"type": "object"}, "Written to the store; every agent acts on it next loop."),
        "503": _json(_ERROR, _STORE_UNREACHABLE),
    })


def _node_control(summary: str, body_schema: str, done: str, refused: str | None) -> dict[str, Any]:
    """An authenticated request to this node's own agent (restart, reload): `done` is the success status."""
    responses = {
        done: _json({"type": "object"}, "Accepted: the agent carries it out." if done == "202" else "Done."),
        "503": _json(_ERROR, _STORE_UNREACHABLE),
    }
    if refused:
        responses["409"] = _json(_ERROR, refused)
    return _post(summary, body_schema, responses)


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "pgkeel node API",
        "version": "1",
        "description": "Probes, status and metrics (open, read-only, answered from the agent's last snapshot) "
        "and switchover/failover requests (bearer token).",
    },
    "paths": {
        **{path: _probe(path, summary) for path, summary in PROBES.items()},
        "/status": _read(
            "The agent's last snapshot: role, leader, PostgreSQL state, replication, actions.",
            {"200": _json({"$ref": "#/components/schemas/Status"}, "Snapshot.")},
        ),
        "/metrics": _read(
            "Prometheus exposition of the snapshot.",
            {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        ),
        "/openapi.json": _read("This document.", {"200": _json({"type": "object"}, "OpenAPI 3 description.")}),
        "/history": _read(
            "Every recorded change of primary (failover, switchover, forced), oldest first, from the store.",
            {
                "200": _json({"type": "object", "properties": {"events": {"type": "array"}}}, "History."),
                "503": _json(_ERROR, _STORE_UNREACHABLE),
            },
        ),
        "/cluster": _read(
            "The store's view as this member reads it: lease holder, member records (each with its api_url), "
            "sync set, pause; for `pgkeel status --api` on another machine.",
            {
                "200": _json({"type": "object", "properties": {"leader": {"type": "object", "nullable": True},
                                                               "members": {"type": "object"}}}, "Cluster."),
                "404": _json(_ERROR, "No store behind this API (served by an agent only)."),
                "503": _json(_ERROR, _STORE_UNREACHABLE),
            },
        ),
        "/pause": _maintenance(
            "Maintenance mode: no automatic failover until `until`/for `seconds`/until resumed "
            "(switchover and forced failover still work).",
            "PauseRequest",
        ),
        "/resume": _maintenance("Leave maintenance mode.", "ResumeRequest"),
        "/membership": _maintenance(
            "Scaling: record the members and k (`pgkeel apply` with another spec.instances); every agent uses them "
            "for the sync set, slots, elections and failsafe rounds from its next loop.",
            "MembershipRequest",
        ),
        "/restart": _node_control(
            "Restart this node's postgres, carried out by its agent (a replica: stop fast, start as a standby).",
            "RestartRequest",
            "202",
            "This node is the leader of several members and `in_place` was not asked: switch over first.",
        ),
        "/reload": _node_control("Reload this node's postgresql.conf and pg_hba.conf now.", "ReloadRequest", "200",
                                 None),
        "/failsafe": _post(
            "Peer to peer: the primary, which cannot reach the store, asks this member to promise not to take "
            "the lease for one ttl (pgkeel.ha.failsafe); the primary serves writes only while every member does.",
            "FailsafeRequest",
            {
                "200": _json({"type": "object"}, "Promised: this member will not lead for one ttl from now."),
                "409": _json(
                    _ERROR, "No promise: this member leads, is taking the lease, runs a primary, last saw another "
                    "leader, has not read the store since it started, or the asker is not a member."
                ),
            },
        ),
        "/switchover/cancel": _post(
            "Remove the pending switchover request (a scheduled one before its time).",
            "CancelSwitchoverRequest",
            {
                "200": _json({"type": "object", "properties": {"cancelled": {"type": "object", "nullable": True}}},
                             "Removed: the request that was pending, or null when none was."),
                "503": _json(_ERROR, _STORE_UNREACHABLE),
            },
        ),
        "/reinit": _node_control(
            "Re-clone this replica from the leader (pg_basebackup); its old data directory is kept aside (one copy "
            "at most, listed in /status `asides`), never deleted. Carried out by its agent (rule "
            "follow.reinit-requested).",
            "ReinitRequest",
            "202",
            "Refused (`reinit-refused`), nothing changed: this node leads, no leader runs to clone from, or an "
            "aside copy is kept already.",
        ),
        "/backup": _post(
            "Queue an on-demand base backup (`kind`: full, diff or incr) in the store; the leader's agent runs it "
            "from a streaming replica when spec.backup.fromStandby. Poll GET /backups for its result.",
            "BackupRequest",
            {
                "202": _json({"$ref": "#/components/schemas/Accepted"}, "Queued: `accepted.id` names the request."),
                "409": _json(_ERROR, "This cluster has no spec.backup (`no-backup`)."),
                "503": _json(_ERROR, _STORE_UNREACHABLE),
            },
        ),
        "/backups": _read(
            "The store's backups record: what the schedule has taken care of, requests waiting, the run under way "
            "(member, heartbeat) and the latest results (newest last).",
            {
                "200": _json({"type": "object", "properties": {"requests": {"type": "array"},
                                                               "run": {"type": "object", "nullable": True},
                                                               "results": {"type": "array"}}}, "Record."),
                "503": _json(_ERROR, _STORE_UNREACHABLE),
            },
        ),
        "/backups/repository": _read(
            "The backups in the cluster's first repository (`pgbackrest info` on this member): label, type, times, "
            "sizes, WAL range; for `pgkeel backup list|info --api`.",
            {
                "200": _json({"type": "object", "properties": {"stanza": {"type": "string"},
                                                               "backups": {"type": "array"}}}, "Repository."),
                "409": _json(_ERROR, "This cluster has no spec.backup (`no-backup`)."),
                "503": _json(_ERROR, "pgBackRest could not read the repository (`repository-unreachable`)."),
            },
        ),
        "/wake": {
            "post": {
                "summary": "Run the agent loop now instead of after loop_wait (changes no state).",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "Woken.")},
            }
        },
        "/switchover": _mutating(
            "Hand leadership to a streaming replica (`to`, or the best one); refusals are answered at once.",
            "SwitchoverRequest",
        ),
        "/failover": _mutating(
            "Promote `to`: with a leader, as a switchover; with force also when no leader holds the lease.",
            "FailoverRequest",
        ),
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "The cluster's API token."}
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string", "description": "What was refused and why, in one line."},
                    "reason": {"type": "string", "enum": ERROR_REASONS, "description": "The refusal, for programs."},
                },
            },
            "Probe": {
                "type": "object",
                "required": ["ok"],
                "description": "A subset of /status in Patroni's shape; xlog, lag and sync fields only on a replica "
                "(xlog.location on the primary).",
                "properties": {
                    "ok": {"type": "boolean"},
                    "name": {"type": "string"},
                    "role": {"type": "string", "nullable": True},
                    "state": {"type": "string"},
                    "leader": {"type": "string", "nullable": True},
                    "is_leader": {"type": "boolean"},
                    "cluster_unlocked": {"type": "boolean"},
                    "dcs_ok": {"type": "boolean"},
                    "timeline": {"type": "integer", "nullable": True},
                    "xlog": {"type": "object"},
                    "lag_bytes": {"type": "integer", "nullable": True},
                    "replication_state": {"type": "string", "nullable": True},
                    "sync_standby": {"type": "boolean"},
                },
            },
            "Status": _STATUS,
            **_STATUS_DEFS,
            "SwitchoverRequest": _body_schema(SwitchoverBody, "Every key is optional."),
            "FailoverRequest": _body_schema(FailoverBody, "`to` (or `candidate`) is required."),
            "PauseRequest": _body_schema(PauseBody, "Every key is optional (no end: until resumed)."),
            "ResumeRequest": _body_schema(ResumeBody, "No keys."),
            "RestartRequest": _body_schema(RestartBody, "`in_place` is optional."),
            "ReloadRequest": _body_schema(ReloadBody, "No keys."),
            "FailsafeRequest": _body_schema(FailsafeBody, "`leader`: the member asking."),
            "CancelSwitchoverRequest": _body_schema(CancelSwitchoverBody, "No keys."),
            "ReinitRequest": _body_schema(ReinitBody, "No keys."),
            "MembershipRequest": _body_schema(MembershipBody, "`members` and `syncStandbys` are required."),
            "BackupRequest": _body_schema(BackupBody, "Every key is optional (a full backup)."),
            "Accepted": {
                "type": "object",
                "required": ["accepted"],
                "properties": {"accepted": {"type": "object"}},
            },
        },
    },
}


def operation(method: str, path: str) -> dict[str, Any] | None:
    """The described operation for a request line, routed as the server routes it.

    Methods are case-sensitive; the query string is ignored; leading slashes collapse to one.
    """
    if method not in ("GET", "HEAD", "OPTIONS", "POST"):
        return None
    route = path.split("?", 1)[0]
    if route.startswith("//"):
        route = "/" + route.lstrip("/")
    op: dict[str, Any] | None = OPENAPI["paths"].get(route, {}).get(method.lower())
    return op


def documented_statuses(method: str, path: str) -> frozenset[int]:
    """Every status the server may answer to this request line."""
    op = operation(method, path)
    routed = frozenset(int(code) for code in op["responses"]) if op else UNROUTED_STATUSES
    return routed | TRANSPORT_STATUSES
