"""A member's own pod on Kubernetes: the StatefulSet's update revision, the roll lock Lease, deleting itself.

The I/O edge of self-driven rolling updates (the decision is pgkeel.ha.rollout; the contract
pgkeel.dcs.pod). Where things live:
- the pods' revisions and deletionTimestamps come from the store's last pod list (no extra call);
- `status.updateRevision` and `spec.replicas` of the StatefulSet `<cluster>` (one GET per roll round);
- Lease `<cluster>-roll`: holderIdentity, leaseDurationSeconds, acquire/renewTime and annotation
  `pgkeel.dev/roll-step`. Taken and released by CAS on resourceVersion after a fresh read, judged
  live on this process's clock (pgkeel.dcs.k8s_observed), exactly as the leader Lease is. Release
  clears the holder, keeping the object, so the Role needs no delete on leases;
- the pod's own DELETE carries a uid precondition, so a judgement about one incarnation of the pod
  can never delete the one the controller made next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pgkeel.dcs.base import DCSError
from pgkeel.dcs.k8s_client import Conflict, KubeClient, NotFound, lease_seconds, micro_time
from pgkeel.dcs.k8s_contract import REVISION_LABEL, common_labels, roll_lease, stateful_set
from pgkeel.dcs.k8s_observed import ObservedClock
from pgkeel.dcs.pod import OwnPod, PodRevisions, RollLockState, StatefulSetState

STEP_ANNOTATION = "pgkeel.dev/roll-step"


class KubernetesPod(OwnPod):
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        scope: str,
        name: str,
        listed: Callable[[], dict[str, dict[str, Any]]],
        timeout: float,
    ) -> None:
        self._client = client
        self.namespace, self.scope, self.name = namespace, scope, name
        self._listed = listed  # the store's last pod list: name -> metadata
        self.timeout = timeout
        self.lease_name = roll_lease(scope)
        self._clock = ObservedClock()

    # --- reading ---------------------------------------------------------------------------------
    def revisions(self) -> PodRevisions:
        pods = self._listed()
        revisions = {name: (meta.get("labels") or {}).get(REVISION_LABEL) for name, meta in pods.items()}
        terminating = frozenset(name for name, meta in pods.items() if meta.get("deletionTimestamp"))
        uid = (pods.get(self.name) or {}).get("uid")
        return PodRevisions(revisions=revisions, terminating=terminating, own_uid=uid if isinstance(uid, str) else None)

    def stateful_set(self) -> StatefulSetState:
        try:
            obj = self._client.get_stateful_set(stateful_set(self.scope), self._deadline())
        except NotFound:
            return StatefulSetState()
        revision = (obj.get("status") or {}).get("updateRevision")
        replicas = (obj.get("spec") or {}).get("replicas", 1)  # the API's default when the field is absent
        return StatefulSetState(
            update_revision=revision if isinstance(revision, str) and revision else None,
            replicas=replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else None,
        )

    def roll_lock(self) -> RollLockState | None:
        obj = self._read(self._deadline())
        return self._state(obj, time.monotonic()) if obj is not None else None

    # --- the lock ----------------------------------------------------------------------------------
    def take_roll_lock(self, step: str, duration: float) -> bool:
        deadline = self._deadline()
        while True:
            obj = self._read(deadline)
            state = self._state(obj, time.monotonic()) if obj is not None else None
            if state is not None and state.holder != self.name and state.held_for < state.duration:
                return False  # another pod's step, still live
            now = micro_time()
            old = (obj or {}).get("spec") or {}
            mine = state is not None and state.holder == self.name
            spec = {
                "holderIdentity": self.name,
                "leaseDurationSeconds": lease_seconds(duration),
                "acquireTime": old.get("acquireTime", now) if mine else now,
                "renewTime": now,
                "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if mine else 1),
            }
            if self._write(obj, spec, {STEP_ANNOTATION: step}, deadline):
                return True

    def release_roll_lock(self) -> bool:
        deadline = self._deadline()
        while True:
            obj = self._read(deadline)
            spec = (obj or {}).get("spec") or {}
            if obj is None or spec.get("holderIdentity") != self.name:
                return False
            kept = {k: v for k, v in spec.items() if k != "holderIdentity"}
            if self._write(obj, {**kept, "renewTime": micro_time()}, {}, deadline):
                return True

    def delete_self(self, uid: str) -> None:
        try:
            self._client.delete_pod(self.name, uid, self._deadline())
        except NotFound:
            return  # already gone
        except Conflict as exc:
            raise DCSError(f"pod {self.name} is no longer the incarnation {uid}: not deleted") from exc

    # --- plumbing -----------------------------------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + self.timeout

    def _read(self, deadline: float) -> dict[str, Any] | None:
        try:
            return self._client.get_lease(self.lease_name, deadline)
        except NotFound:
            return None

    def _state(self, obj: dict[str, Any], now: float) -> RollLockState | None:
        spec = obj.get("spec") or {}
        holder = spec.get("holderIdentity")
        if not isinstance(holder, str) or not holder:
            return None
        step = ((obj.get("metadata") or {}).get("annotations") or {}).get(STEP_ANNOTATION, "")
        duration = spec.get("leaseDurationSeconds")
        seen = self._clock.observe("roll", _fingerprint(spec, step), now)
        return RollLockState(holder, step, now - seen, float(duration) if isinstance(duration, int) else 0.0)

    def _write(self, obj: dict[str, Any] | None, spec: dict[str, Any], notes: dict[str, str], deadline: float) -> bool:
        """Create or CAS-replace the lock Lease; False after a 409 or 404 (someone else wrote: judge again)."""
        sent = time.monotonic()
        try:
            if obj is None:
                meta = {"name": self.lease_name, "namespace": self.namespace, "labels": common_labels(self.scope),
                        "annotations": notes}
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}
                answer = self._client.create_lease(body, deadline)
            else:
                meta = {**obj["metadata"], "annotations": notes}
                answer = self._client.replace_lease({**obj, "metadata": meta, "spec": spec}, deadline)
        except (Conflict, NotFound):
            return False
        step = ((answer.get("metadata") or {}).get("annotations") or {}).get(STEP_ANNOTATION, "")
        self._clock.wrote("roll", _fingerprint(answer.get("spec") or {}, step), sent)
        return True


def _fingerprint(spec: dict[str, Any], step: str) -> tuple[Any, ...]:
    return (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"), step)
