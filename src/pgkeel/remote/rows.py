"""The `pgkeel status` view of a cluster on other machines, in the local view's shape (same table, same --json).

Two inputs, one shape: the store's member records (always, when readable) and, where a member's API
answered, its /status, which adds what only the member knows (receive/replay lag, pending restart,
last error). Without /status a row says what the record says and its lags are measured against the
leader's published LSN; a member with neither is listed (from the document) as `no record`.
"""

from __future__ import annotations

import time
from typing import Any

from pgkeel.ha.records import ClusterState, MemberRecord
from pgkeel.ha.status import NodeStatus, cluster_summary, member_summary


def _behind(leader_lsn: int | None, lsn: int | None) -> int | None:
    return None if leader_lsn is None or lsn is None else max(0, leader_lsn - lsn)


def member_row(
    name: str, record: MemberRecord | None, status: NodeStatus | None, state: ClusterState, sync: str | None,
    why_silent: str | None = None,
) -> dict[str, Any]:
    """One member as `pgkeel status --json` lists it; `why_silent` is why its API gave no /status."""
    row: dict[str, Any] = {"name": name, **member_summary(status), "sync": sync}
    if status is not None:
        pg = status.postgres
        return {**row, "role": "refused" if status.refused else status.role, "state": status.state,
                "timeline": pg.timeline, "lsn": pg.lsn, "lag_bytes": status.lag_bytes,
                "host": pg.host or (record.host if record else None),
                "port": pg.port or (record.port if record else None),
                "api_url": record.api_url if record else None, "postgres_pid": pg.pid, "agent_pid": status.agent_pid,
                "cert_not_after": status.tls.certificate_not_after}
    if record is None:
        return {**row, "role": "unknown", "state": "no record", "timeline": None, "lsn": None, "lag_bytes": None,
                "port": None, "api_url": None, "postgres_pid": None, "agent_pid": None, "cert_not_after": None,
                "last_error": why_silent}
    leader = state.members.get(state.leader_name or "")
    lag = _behind(leader.lsn, record.lsn) if leader is not None and leader.name != name else None
    return {**row, "role": str(record.role), "state": str(record.state), "timeline": record.timeline,
            "lsn": record.lsn, "lag_bytes": lag, "receive_lag_bytes": lag, "host": record.host, "port": record.port,
            "api_url": record.api_url, "postgres_pid": record.postgres_pid, "agent_pid": record.agent_pid,
            "cert_not_after": None, "last_error": why_silent}


def sync_states(state: ClusterState, statuses: dict[str, NodeStatus | None]) -> dict[str, str]:
    """Each replica's sync state: as the primary's pg_stat_replication says, else from the store's sync set."""
    primary = next((s for s in statuses.values() if s is not None and s.role == "primary"), None)
    if primary is not None:
        return {peer.name: peer.sync_state for peer in primary.replication if peer.sync_state}
    if state.sync is None:
        return {}
    return {name: "quorum" for name in state.sync.members}  # the store keeps 'ANY quorum (members)' only


def cluster_view(
    name: str, members: tuple[str, ...], state: ClusterState, statuses: dict[str, NodeStatus | None],
    silent: dict[str, str], source: str,
) -> dict[str, Any]:
    """The whole status: header fields, then a row per member (document order first, then the store's)."""
    names = list(dict.fromkeys([*members, *sorted(state.members), *sorted(statuses)]))
    sync = sync_states(state, statuses)
    rows = [member_row(n, state.members.get(n), statuses.get(n), state, sync.get(n), silent.get(n)) for n in names]
    header = cluster_summary(name, statuses, state.leader_name)
    if not any(statuses.values()):  # the store alone: the header from the records
        records = list(state.members.values())
        first = state.members.get(state.leader_name or "") or (records[0] if records else None)
        header = {**header, "system_identifier": first.system_identifier if first else None}
    # Maintenance mode and a pending switchover are the store's (an agent reports them only after its next loop).
    in_force = state.pause is not None and state.pause.in_force(time.time())
    request = state.switchover
    header = {**header, "paused": in_force, "paused_until": state.pause.until if in_force and state.pause else None,
              "switchover": {"source": request.source, "target": request.target, "at": request.at}
              if request is not None else None}
    return {**header, "leader": state.leader_name, "source": source, "members": rows}
