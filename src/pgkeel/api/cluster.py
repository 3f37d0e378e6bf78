"""GET /cluster: the store's view as a member reads it, for tools on other machines (`pgkeel status --api`).

Why it exists: a member's own /status names no peer, so a person who can reach one member's API
(and not the store) could not list the others. This is the one codec of that body, both ways:
the API encodes a decoded `ClusterState`, the remote client decodes it back into one, so both
sides read the same typed records (`pgkeel.ha.records`) and junk reads as unknown, never as a fact.
"""

from __future__ import annotations

from typing import Any

from pgkeel.dcs import Leader
from pgkeel.ha.records import ClusterState, MemberRecord, Pause, SyncRecord


def encode_cluster(state: ClusterState) -> dict[str, Any]:
    """The /cluster body: lease holder, member records (with each one's api_url), sync set and pause."""
    leader = state.leader
    return {
        "leader": {"holder": leader.holder, "term": leader.term, "ttl": leader.ttl} if leader else None,
        "members": {name: record.to_json() for name, record in state.members.items()},
        "sync": state.sync.to_json() if state.sync else None,
        "sync_version": state.sync_version,
        "pause": state.pause.to_json() if state.pause else None,
    }


def _leader(value: Any) -> Leader | None:
    if not isinstance(value, dict) or not isinstance(value.get("holder"), str):
        return None
    term, ttl = value.get("term"), value.get("ttl")
    return Leader(
        holder=value["holder"],
        term=term if isinstance(term, int) and not isinstance(term, bool) else 0,
        ttl=float(ttl) if isinstance(ttl, int | float) and not isinstance(ttl, bool) else 0.0,
    )


def decode_cluster(body: Any) -> ClusterState:
    """A /cluster body back into the state it was made from; anything malformed reads as absent."""
    if not isinstance(body, dict):
        return ClusterState()
    members = body.get("members")
    version = body.get("sync_version")
    sync_version = version if isinstance(version, int) and not isinstance(version, bool) else 0
    return ClusterState(
        leader=_leader(body.get("leader")),
        members={name: MemberRecord.from_json(name, data) for name, data in members.items() if isinstance(name, str)}
        if isinstance(members, dict) else {},
        sync=SyncRecord.from_json(body.get("sync"), sync_version),
        sync_version=sync_version,
        pause=Pause.from_config({"pause": body.get("pause")}),
    )
