"""A member's own pod, where the store is the Kubernetes API: what rolling updates and drains read and do.

Only the Kubernetes store has one (`DCS.own_pod`); elsewhere there is no controller that recreates a
member, so nothing here applies. The records are plain data for the pure roll decision
(pgkeel.ha.rollout, pgkeel.ha.k8s_scaling); the methods are the only I/O those decisions' steps need:
read the StatefulSet (update revision, replicas), read and compare-and-swap the roll lock, delete this pod.

The roll lock is judged like the leader lease: live until it has stayed unchanged for its duration
as observed by this process (monotonic), so a holder that died blocks the next step for one
duration, never for ever; taking it is a compare-and-swap, so two pods can never both hold it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PodRevisions:
    """What the StatefulSet controller and the kubelet say about the member pods (from the last pod list)."""

    revisions: dict[str, str | None] = field(default_factory=dict)  # pod -> controller-revision-hash; absent: no pod
    terminating: frozenset[str] = frozenset()  # pods with a deletionTimestamp: on their way out
    own_uid: str | None = None  # this pod's uid, the precondition of its own deletion


@dataclass(frozen=True)
class StatefulSetState:
    """The StatefulSet as one GET reads it: what a recreated pod runs, and how many pods it should have."""

    update_revision: str | None = None  # status.updateRevision; None: not reported yet (or no StatefulSet)
    replicas: int | None = None  # spec.replicas, as `kubectl scale` sets it; None: not read


@dataclass(frozen=True)
class RollLockState:
    """The roll lock as read: who holds it for which step, and how long it has been unchanged here."""

    holder: str
    step: str
    held_for: float  # seconds unchanged, as observed by this process (from our own write: since it was sent)
    duration: float  # the holder's promise: its step ends, or anyone may take over, after this long


class OwnPod(ABC):
    """This member's pod and the few API calls a self-driven rolling update makes; see the module docstring."""

    @abstractmethod
    def revisions(self) -> PodRevisions:
        """The member pods as the store last listed them (no I/O)."""

    @abstractmethod
    def stateful_set(self) -> StatefulSetState:
        """The StatefulSet's status.updateRevision and spec.replicas (one read; empty when it does not exist)."""

    @abstractmethod
    def roll_lock(self) -> RollLockState | None:
        """The lock as it is now; None when nobody holds it."""

    @abstractmethod
    def take_roll_lock(self, step: str, duration: float) -> bool:
        """Hold the lock for `step` (CAS): only if free, ours already, or expired by this process's clock."""

    @abstractmethod
    def release_roll_lock(self) -> bool:
        """Give the lock back (CAS), only if this pod holds it."""

    @abstractmethod
    def delete_self(self, uid: str) -> None:
        """DELETE this pod if it is still the incarnation `uid` (the kubelet then sends the agent SIGTERM)."""
