"""The coordination store's interface: what the HA agent may ask of any backend.

Backends (sqlite, etcd, kubernetes) implement :class:`DCS`. A lost race returns False;
:class:`DCSError` is reserved for outages, so the agent can tell "someone else won" from
"I cannot know" and self-fence on the latter.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pgkeel.dcs.pod import OwnPod


class DCSError(Exception):
    """The store could not be reached or answered wrongly (an outage, not a lost race)."""


@dataclass(frozen=True)
class Leader:
    """Who holds the leader lease; `term` rises with every acquisition, not with renewals."""

    holder: str
    term: int
    ttl: float


@dataclass(frozen=True)
class Member:
    """One node's published status (JSON-serialisable)."""

    name: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Versioned:
    """A cluster-wide value written by compare-and-swap on `version` (see :meth:`DCS.set_value`)."""

    value: dict[str, Any]
    version: int


VALUE_KEYS = ("config", "events", "backups")  # operator settings; primaries' history; scheduled/requested backups


@dataclass(frozen=True)
class ClusterView:
    """Everything the agent needs, read in one call per loop.

    `history` is the durable leader-history record (see :meth:`DCS.set_history`): unlike `leader`
    and `members` it does not expire, so it still names the last leader after its lease and its
    member record are gone. `switchover` is a pending request only until its ttl runs out.
    `values` holds the operator-level values (:data:`VALUE_KEYS`) that exist, by key.
    """

    leader: Leader | None
    members: dict[str, Member] = field(default_factory=dict)
    initialize: str | None = None
    sync: dict[str, Any] | None = None
    sync_version: int = 0
    switchover: dict[str, Any] | None = None
    history: dict[str, Any] | None = None
    values: dict[str, Versioned] = field(default_factory=dict)


class DCS(ABC):
    """A leader lease with TTL and compare-and-swap, member records and cluster-wide state.

    Every method answers or raises :class:`DCSError` within the backend's timeout, because
    the agent's self-fencing depends on the store failing fast. Callers must measure their
    own fencing deadline from *before* the call: the store starts the TTL no earlier.
    """

    @abstractmethod
    def view(self) -> ClusterView:
        """Read leader, live members and cluster state in one consistent call."""

    @abstractmethod
    def acquire_leader(self, name: str, ttl: float) -> bool:
        """Take the lease only if no live leader exists; starts a new, higher term."""

    @abstractmethod
    def renew_leader(self, name: str, ttl: float) -> bool:
        """Restart the TTL only if `name` still holds a live lease; the term is kept."""

    @abstractmethod
    def release_leader(self, name: str) -> bool:
        """Delete the lease only if `name` holds it."""

    @abstractmethod
    def take_over_leader(self, from_name: str, to_name: str, ttl: float) -> bool:
        """Atomically hand a live lease held by `from_name` to `to_name` (new term)."""

    @abstractmethod
    def initialize(self, value: str) -> bool:
        """Claim the bootstrap: the first writer wins."""

    @abstractmethod
    def set_initialize(self, expected: str, value: str) -> bool:
        """Replace the initialize value only if it is `expected` (placeholder -> sysid)."""

    @abstractmethod
    def clear_initialize(self, expected: str) -> bool:
        """Delete the initialize value only if it is `expected` (bootstrap failed)."""

    @abstractmethod
    def set_member(self, name: str, data: dict[str, Any], ttl: float) -> None:
        """Publish (upsert) this node's status; it disappears `ttl` seconds after the last call."""

    @abstractmethod
    def delete_member(self, name: str) -> None:
        """Remove a member record now (absent is fine)."""

    @abstractmethod
    def set_sync(self, value: dict[str, Any], expected_version: int) -> bool:
        """Write sync state only if its version is `expected_version` (0: must not exist)."""

    @abstractmethod
    def set_switchover(self, value: dict[str, Any], ttl: float = 60.0) -> None:
        """Record a pending switchover/failover request (replaces any previous one).

        The request expires: `view()` stops returning it `ttl` seconds after this call, measured
        as the backend measures member TTLs, so a request nobody acted on cannot fire later.
        """

    @abstractmethod
    def clear_switchover(self) -> None:
        """Remove the pending switchover request (absent is fine)."""

    @abstractmethod
    def set_history(self, name: str, value: dict[str, Any]) -> bool:
        """Replace the leader-history record, only while `name` holds a live lease.

        The value is opaque JSON here (the HA layer owns its schema). It has no TTL: it survives
        lease expiry, release, member expiry and restarts until the next holder replaces it. False
        when `name` does not hold a live lease (never held, expired, released, taken over);
        :class:`DCSError` when the store cannot tell.
        """

    @abstractmethod
    def set_value(self, key: str, value: dict[str, Any], expected_version: int) -> bool:
        """Write the value `key` (one of :data:`VALUE_KEYS`) only if its version is `expected_version`
        (0: must not exist). Any node may write it (no lease needed); it has no TTL."""

    def own_pod(self, name: str) -> OwnPod | None:
        """Member `name`'s own pod, where a controller recreates deleted members (Kubernetes); else None."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release connections; records stay and expire by their TTL."""


def check_value_key(key: str) -> str:
    if key not in VALUE_KEYS:
        raise ValueError(f"unknown cluster value {key!r}: one of {', '.join(VALUE_KEYS)}")
    return key


def check_name(kind: str, value: str) -> str:
    """Reject names that would break key layouts (empty or containing '/')."""
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(f"{kind} must be a non-empty string without '/': {value!r}")
    return value


def check_ttl(ttl: float) -> float:
    """Reject TTLs that cannot describe a lease (non-positive, NaN, infinite)."""
    if not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"ttl must be a positive finite number of seconds: {ttl!r}")
    return float(ttl)


def check_timeout(timeout: float) -> float:
    """Reject timeouts that would let a call hang or never run."""
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive finite number of seconds: {timeout!r}")
    return float(timeout)
