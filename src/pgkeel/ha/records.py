"""What nodes exchange through the store, typed: one tolerant codec per record.

The store keeps opaque JSON (pgkeel.dcs); this module is the only place that reads or writes
those payloads. Decoding never raises: a field that is missing or of the wrong type reads as
"unknown" (None), so a peer running another version, or junk in the store, can make a node
wait but can never crash its loop or be mistaken for a fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from pgkeel.dcs import ClusterView, Leader

BOOTSTRAP_PLACEHOLDER = "bootstrapping:"
E = TypeVar("E", bound=StrEnum)


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"
    STARTING = "starting"
    UNINITIALIZED = "uninitialized"
    CLONING = "cloning"
    REFUSED = "refused"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


class MemberState(StrEnum):
    RUNNING = "running"  # a primary accepting connections
    STREAMING = "streaming"  # a replica receiving WAL from its leader
    RECOVERING = "recovering"  # a replica not (yet) receiving WAL
    STOPPED = "stopped"
    REFUSED = "refused"
    UNKNOWN = "unknown"


class FenceKind(StrEnum):
    """What stops a primary's commits once its lease deadline passed, independent of the agent loop."""

    EXTENSION = "extension"  # pgkeel_fence inside postgres refuses commits
    WATCHDOG = "watchdog"  # a separate process kills postgres
    NONE = "none"  # only the agent loop itself


def _str(d: dict[str, Any], key: str) -> str | None:
    value = d.get(key)
    return value if isinstance(value, str) and value else None


def _int(d: dict[str, Any], key: str) -> int | None:
    value = d.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _enum(kind: type[E], value: Any, default: E) -> E:
    try:
        return kind(value)
    except ValueError:
        return default


def url_host(host: str) -> str:
    """HOST as it stands in a URL or HOST:PORT: an IPv6 literal in brackets (RFC 3986), anything else as is."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{url_host(self.host)}:{self.port}"


@dataclass(frozen=True)
class MemberRecord:
    """One node's published status; expires member_ttl after its last publication."""

    name: str
    role: Role = Role.UNKNOWN
    state: MemberState = MemberState.UNKNOWN
    host: str | None = None
    port: int | None = None
    api_url: str | None = None
    timeline: int | None = None
    lsn: int | None = None
    system_identifier: str | None = None
    postgres_pid: int | None = None
    agent_pid: int | None = None
    fence: FenceKind = FenceKind.NONE

    @property
    def address(self) -> Address | None:
        return Address(self.host, self.port) if self.host and self.port else None

    @property
    def running_primary(self) -> bool:
        return self.role is Role.PRIMARY and self.state is MemberState.RUNNING

    @property
    def streaming_replica(self) -> bool:
        return self.role is Role.REPLICA and self.state is MemberState.STREAMING

    @classmethod
    def from_json(cls, name: str, d: Any) -> MemberRecord:
        if not isinstance(d, dict):
            return cls(name)
        return cls(
            name=name,
            role=_enum(Role, d.get("role"), Role.UNKNOWN),
            state=_enum(MemberState, d.get("state"), MemberState.UNKNOWN),
            host=_str(d, "host"),
            port=_int(d, "port"),
            api_url=_str(d, "api_url"),
            timeline=_int(d, "timeline"),
            lsn=_int(d, "lsn"),
            system_identifier=_str(d, "system_identifier"),
            postgres_pid=_int(d, "postgres_pid"),
            agent_pid=_int(d, "agent_pid"),
            fence=_enum(FenceKind, d.get("fence"), FenceKind.NONE),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "role": str(self.role),
            "state": str(self.state),
            "host": self.host,
            "port": self.port,
            "api_url": self.api_url,
            "timeline": self.timeline,
            "lsn": self.lsn,
            "system_identifier": self.system_identifier,
            "postgres_pid": self.postgres_pid,
            "agent_pid": self.agent_pid,
            "fence": str(self.fence),
        }


@dataclass(frozen=True)
class SyncRecord:
    """The quorum the last leader's commits waited for: 'ANY quorum (members)'; version is the store's CAS token."""

    leader: str
    members: tuple[str, ...]
    quorum: int
    version: int = 0

    @property
    def needed(self) -> int:
        """How many members an election must hear to prove it holds every acknowledged commit."""
        return len(self.members) - self.quorum + 1

    @classmethod
    def from_json(cls, d: Any, version: int) -> SyncRecord | None:
        if not isinstance(d, dict) or _str(d, "leader") is None:
            return None
        members = d.get("members")
        names = tuple(m for m in members if isinstance(m, str)) if isinstance(members, list) else ()
        return cls(leader=str(d["leader"]), members=names, quorum=_int(d, "quorum") or 0, version=version)

    def to_json(self) -> dict[str, Any]:
        return {"leader": self.leader, "members": list(self.members), "quorum": self.quorum}

    def same_rule(self, other: SyncRecord | None) -> bool:
        return other is not None and (self.leader, self.members, self.quorum) == (
            other.leader,
            other.members,
            other.quorum,
        )


@dataclass(frozen=True)
class SwitchoverRequest:
    """An operator's request: hand over from `source` (None: whoever leads) to `target` (None: the best).

    `at` (wall clock, epoch seconds) schedules it: stored now, so it outlives the CLI and agent restarts,
    and carried out by the leader from that time on (None: at once). The store keeps it until a little
    after `at` (pgkeel.ha.switchover_request.store_ttl), so a leader that was down then does not act late.
    """

    source: str | None = None
    target: str | None = None
    force: bool = False
    at: float | None = None

    def due(self, wall_now: float) -> bool:
        return self.at is None or wall_now >= self.at

    @classmethod
    def from_json(cls, d: Any) -> SwitchoverRequest | None:
        if not isinstance(d, dict):
            return None
        at = d.get("at")
        return cls(
            source=_str(d, "from"),
            target=_str(d, "to"),
            force=d.get("force") is True,
            at=float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None,
        )

    def to_json(self) -> dict[str, Any]:
        request: dict[str, Any] = {"from": self.source, "to": self.target, "force": self.force}
        if self.at is not None:  # an immediate request keeps the shape older agents and clients know
            request["at"] = self.at
        return request


@dataclass(frozen=True)
class LeaderHistory:
    """The last leader, durable: it does not expire with member records or the lease.

    Elections rest on it: who led, where its postgres listens (to ask whether it still runs as
    a primary), its timeline and last known position (async maxLagOnFailover), and whether a fence
    independent of its agent guarantees it stopped committing once its lease lapsed.
    """

    leader: str
    address: Address | None = None
    timeline: int | None = None
    lsn: int | None = None
    term: int | None = None
    fence: FenceKind = FenceKind.NONE

    @classmethod
    def from_json(cls, d: Any) -> LeaderHistory | None:
        if not isinstance(d, dict) or _str(d, "leader") is None:
            return None
        host, port = _str(d, "host"), _int(d, "port")
        return cls(
            leader=str(d["leader"]),
            address=Address(host, port) if host and port else None,
            timeline=_int(d, "timeline"),
            lsn=_int(d, "lsn"),
            term=_int(d, "term"),
            fence=_enum(FenceKind, d.get("fence"), FenceKind.NONE),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "leader": self.leader,
            "host": self.address.host if self.address else None,
            "port": self.address.port if self.address else None,
            "timeline": self.timeline,
            "lsn": self.lsn,
            "term": self.term,
            "fence": str(self.fence),
        }


@dataclass(frozen=True)
class Pause:
    """Maintenance mode (the `config` value's "pause"): no automatic failover while it is in force.

    `until` is wall-clock time (epoch seconds, as the operator gave it) or None for no expiry; a
    pause past its `until` is over even if nobody removed it.
    """

    until: float | None = None
    by: str | None = None  # who asked, for status
    reason: str | None = None

    def in_force(self, wall_now: float) -> bool:
        return self.until is None or wall_now < self.until

    @classmethod
    def from_config(cls, config: Any) -> Pause | None:
        if not isinstance(config, dict) or not isinstance(config.get("pause"), dict):
            return None
        d = config["pause"]
        until = d.get("until")
        return cls(
            until=float(until) if isinstance(until, int | float) and not isinstance(until, bool) else None,
            by=_str(d, "by"),
            reason=_str(d, "reason"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"until": self.until, "by": self.by, "reason": self.reason}


@dataclass(frozen=True)
class Membership:
    """Who the members are now (the `config` value's "membership"), written by a scaling `pgkeel apply`.

    Absent until the first scaling: then every agent uses the members of the document it started with.
    Recorded, not configured, because agents started from the old document must see the new members
    (sync set, slots, failsafe round, candidates) from their next loop without a restart.
    """

    members: tuple[str, ...]
    sync_standbys: int

    @classmethod
    def from_config(cls, config: Any) -> Membership | None:
        if not isinstance(config, dict) or not isinstance(config.get("membership"), dict):
            return None
        d = config["membership"]
        members, k = d.get("members"), d.get("syncStandbys")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members) or not members:
            return None
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            return None
        return cls(tuple(members), k)

    def to_json(self) -> dict[str, Any]:
        return {"members": list(self.members), "syncStandbys": self.sync_standbys}


class EventKind(StrEnum):
    FAILOVER = "failover"  # elected after the leader's lease lapsed
    SWITCHOVER = "switchover"  # handed the lease by the leader on request
    FORCED = "forced"  # an operator forced a failover to this node
    RESTORED = "restored"  # a lease holder whose data was a standby promoted (e.g. after an aborted switchover)


@dataclass(frozen=True)
class HistoryEvent:
    """One change of primary, kept in the store's `events` value (newest last, bounded)."""

    time: float  # wall clock, epoch seconds, when the new primary promoted
    kind: EventKind
    leader: str  # the new primary
    previous: str | None  # the leader before it (from the durable leader history)
    timeline: int | None  # the new primary's timeline
    lsn: int | None  # where the new timeline forked (the promoted node's position)
    term: int | None = None

    @classmethod
    def from_json(cls, d: Any) -> HistoryEvent | None:
        if not isinstance(d, dict) or _str(d, "leader") is None:
            return None
        when = d.get("time")
        return cls(
            time=float(when) if isinstance(when, int | float) and not isinstance(when, bool) else 0.0,
            kind=_enum(EventKind, d.get("kind"), EventKind.FAILOVER),
            leader=str(d["leader"]),
            previous=_str(d, "previous"),
            timeline=_int(d, "timeline"),
            lsn=_int(d, "lsn"),
            term=_int(d, "term"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "kind": str(self.kind),
            "leader": self.leader,
            "previous": self.previous,
            "timeline": self.timeline,
            "lsn": self.lsn,
            "term": self.term,
        }


MAX_EVENTS = 200  # the store keeps the newest this many changes of primary


def decode_events(value: Any) -> list[HistoryEvent]:
    raw = value.get("events") if isinstance(value, dict) else None
    if not isinstance(raw, list):
        return []
    return [e for e in (HistoryEvent.from_json(item) for item in raw) if e is not None]


def append_event(value: Any, event: HistoryEvent) -> dict[str, Any]:
    """The `events` value with `event` added; the same event (leader and term) is not added twice."""
    events = decode_events(value)
    if any(e.leader == event.leader and e.term == event.term and e.term is not None for e in events):
        return {"events": [e.to_json() for e in events]}
    kept = [*events, event][-MAX_EVENTS:]
    return {"events": [e.to_json() for e in kept]}


@dataclass(frozen=True)
class ClusterState:
    """The store's view, decoded: what every rule reads instead of raw dicts."""

    leader: Leader | None = None
    members: dict[str, MemberRecord] = field(default_factory=dict)
    initialize: str | None = None
    sync: SyncRecord | None = None
    sync_version: int = 0
    switchover: SwitchoverRequest | None = None
    history: LeaderHistory | None = None
    pause: Pause | None = None  # maintenance mode as recorded; see Pause.in_force for whether it holds now
    membership: Membership | None = None  # the members after a scaling; None: the document's

    @property
    def leader_name(self) -> str | None:
        return self.leader.holder if self.leader else None

    @property
    def bootstrapping(self) -> str | None:
        """The node whose bootstrap claim is in the initialize key, if any."""
        init = self.initialize
        if init and init.startswith(BOOTSTRAP_PLACEHOLDER):
            return init[len(BOOTSTRAP_PLACEHOLDER) :]
        return None

    @classmethod
    def decode(cls, view: ClusterView) -> ClusterState:
        return cls(
            leader=view.leader,
            members={name: MemberRecord.from_json(name, m.data) for name, m in view.members.items()},
            initialize=view.initialize,
            sync=SyncRecord.from_json(view.sync, view.sync_version),
            sync_version=view.sync_version,
            switchover=SwitchoverRequest.from_json(view.switchover),
            history=LeaderHistory.from_json(view.history),
            pause=Pause.from_config(view.values["config"].value) if "config" in view.values else None,
            membership=Membership.from_config(view.values["config"].value) if "config" in view.values else None,
        )
