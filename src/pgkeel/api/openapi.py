"""OpenAPI 3 description of the node API (served at `GET /openapi.json`).

It is the contract the fuzz tests hold the server to: every answer, to any request however
malformed, has a status listed here. Read-only endpoints are open (probes, load balancers);
mutating ones need `Authorization: Bearer <cluster API token>`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

from pgkeel.api.bodies import FailoverBody, SwitchoverBody
from pgkeel.ha.status import NodeStatus
from pgkeel.ha.switchover_request import Refusal

MAX_BODY = 16 * 1024  # the largest request body the server reads

# A refused switchover/failover: 503 when the cluster has no leader to hand over from, else 409.
REFUSAL_STATUS: dict[Refusal, HTTPStatus] = {
    reason: HTTPStatus.SERVICE_UNAVAILABLE if reason is Refusal.NO_LEADER else HTTPStatus.CONFLICT
    for reason in Refusal
}
# Every `reason` an error body may carry.
ERROR_REASONS = sorted([*(str(r) for r in Refusal), "bad-body", "store-unreachable"])


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
    schema["description"] = f"{note} Unknown keys are refused (400); so is Patroni's `scheduled_at` (not supported)."
    return schema


# Probes: 200 when the node is what the path asks, 503 otherwise.
PROBES = {
    "/health": "PostgreSQL is running on this node.",
    "/primary": "This node is the leader and its PostgreSQL accepts writes.",
    "/master": "Alias of /primary.",
    "/read-write": "Alias of /primary.",
    "/replica": "This node runs a replica that is not refused by the cluster.",
    "/read-only": "Alias of /replica.",
    "/readiness": "A primary, or a replica that streams from it.",
    "/liveness": "The agent loop is alive (does not depend on PostgreSQL).",
}
MUTATING = ("/switchover", "/failover")

# What the HTTP layer itself may answer to any request it cannot parse, before routing:
# bad request line or headers, URI over 64 KiB, more than 100 headers, unknown method,
# unsupported HTTP version.
TRANSPORT_STATUSES = frozenset({400, 414, 431, 501, 505})
# A known method on an unknown path.
UNROUTED_STATUSES = frozenset({404})

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _probe(summary: str) -> dict[str, Any]:
    probe = {"$ref": "#/components/schemas/Probe"}
    return _read(summary, {"200": _json(probe, "Yes."), "503": _json(probe, "No.")})


def _read(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    """An open, read-only endpoint: GET, and HEAD with the same status and headers but no body."""
    op = {"summary": summary, "security": [], "responses": responses}
    return {"get": op, "head": op}


def _mutating(summary: str, body_schema: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body_schema}"}}},
            },
            "responses": {
                "202": _json({"$ref": "#/components/schemas/Accepted"}, "Request recorded in the coordination store."),
                "400": _json(
                    _ERROR,
                    f"Body is not a JSON object of at most {MAX_BODY} bytes, has an unknown key (named, with the "
                    "accepted ones), a wrong type, both `to` and `candidate`, or `scheduled_at` (not supported).",
                ),
                "401": _json(_ERROR, "Missing or wrong bearer token."),
                "403": _json(_ERROR, "No API token is configured on this node: mutating endpoints are disabled."),
                "409": _json(
                    _ERROR,
                    "Refused, nothing recorded: unknown member, `leader` is not the leader, the target is already "
                    "the leader, is not a streaming replica (or, forced, not running), or no replica can take over.",
                ),
                "413": _json(_ERROR, f"Body larger than {MAX_BODY} bytes (it is not read)."),
                "503": _json(
                    _ERROR, "No leader holds the lease (use /failover with force), or the coordination store is "
                    "unreachable."
                ),
            },
        }
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "pgkeel node API",
        "version": "1",
        "description": "Probes, status and metrics (open, read-only, answered from the agent's last snapshot) "
        "and switchover/failover requests (bearer token).",
    },
    "paths": {
        **{path: _probe(summary) for path, summary in PROBES.items()},
        "/status": _read(
            "The agent's last snapshot: role, leader, PostgreSQL state, replication, actions.",
            {"200": _json({"$ref": "#/components/schemas/Status"}, "Snapshot.")},
        ),
        "/metrics": _read(
            "Prometheus exposition of the snapshot.",
            {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        ),
        "/openapi.json": _read("This document.", {"200": _json({"type": "object"}, "OpenAPI 3 description.")}),
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
                "properties": {"ok": {"type": "boolean"}, "role": {"type": "string", "nullable": True}},
            },
            "Status": _STATUS,
            **_STATUS_DEFS,
            "SwitchoverRequest": _body_schema(SwitchoverBody, "Every key is optional."),
            "FailoverRequest": _body_schema(FailoverBody, "`to` (or `candidate`) is required."),
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
    if method not in ("GET", "HEAD", "POST"):
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
