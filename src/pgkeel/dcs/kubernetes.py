"""The Kubernetes store: a coordination.k8s.io Lease for the leader, pod annotations for members.

Where things live (namespace from the URL `kubernetes://<namespace>[/<cluster>]`):
- Lease `<cluster>-leader`: holderIdentity, leaseDurationSeconds (the TTL rounded up to whole
  seconds), acquireTime/renewTime (MicroTime), leaseTransitions = the term, +1 per acquisition.
  Release clears holderIdentity instead of deleting, so terms keep rising (and the Role needs no
  delete).
- Lease `<cluster>-state`: annotations for the cluster-wide values (initialize, sync with its
  version, switchover, history). A second Lease, not a ConfigMap, so the Role covers only leases
  and pods, and state writes never conflict with leader renewals.
- The switchover request (`{"value", "ttl", "requestTime"}`) expires like a member record (below);
  the first observer that sees it expired removes it (CAS), so a process started later cannot see
  it again and restart its clock.
- The leader history (`{"value", "holder", "term", "lease"}`) has no expiry. It is written only
  after a fresh read of the leader Lease shows `name` holding it live (as renew judges), is sent
  only before that lease ends by this process's clock, and is a CAS on the state Lease's
  resourceVersion. The two objects cannot change in one transaction, so a history write is also
  fenced by term: it is refused when the stored record was written under a higher term of the
  same leader Lease (same uid). A holder whose lease lapses while its write is in flight can
  therefore land it before the next leader's first history write, never after it.
- Each member's own pod: annotation `pgkeel.dev/status` (JSON: data, ttl, renewTime) and, in the
  same patch, label `pgkeel.dev/role` = primary | replica (removed for any other role), which the
  `-rw`/`-ro` Services select on. A new primary also strips a stale `primary` label from other
  pods (conditionally on their resourceVersion) so `-rw` cannot keep pointing at a dead one.

Every write is a compare-and-swap on metadata.resourceVersion after a fresh read. A 409 means
another writer got in between: the operation re-reads and re-judges, so a genuinely lost race
returns False, while an outage (refused, reset, timed out, 5xx) raises DCSError; reads and
surely-unapplied failures (connect errors, 429, 503) are retried inside the timeout, so a flaky API
server costs a retry, not a demotion.

Expiry is judged on this process's monotonic clock, never on remote wall clocks (as client-go's
leader election does): a record is live until it has stayed unchanged, as observed here, for its
duration. Our own writes count from just before the request was sent; other writers' changes from
when we first saw them, which is never earlier than the server applied them. So an observer
declares the lease expired no earlier than `duration` after the holder sent its last successful
renewal; the holder self-fences by `fence_deadline < ttl <= duration` after sending it (measured by
the agent, also monotonically): the old primary has stopped writing before anyone may take over.
The price: a freshly started process must watch a lease for one full duration before it may
treat it as expired, however old its renewTime is (renewTime is written for humans and tools).
Member records expire the same way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgkeel.dcs.base import (
    DCS,
    ClusterView,
    DCSError,
    Leader,
    Member,
    Versioned,
    check_name,
    check_timeout,
    check_ttl,
    check_value_key,
)
from pgkeel.dcs.k8s_client import Conflict, Endpoint, KubeClient, NotFound, lease_seconds, micro_time
from pgkeel.dcs.k8s_contract import (
    ROLE_LABEL,
    ROLE_PRIMARY,
    ROLE_REPLICA,
    STATUS_ANNOTATION,
    common_labels,
    leader_lease,
    selector_labels,
    state_lease,
)
from pgkeel.dcs.k8s_observed import ObservedClock
from pgkeel.dcs.k8s_pod import KubernetesPod

log = logging.getLogger("pgkeel.dcs.kubernetes")

INITIALIZE_ANNOTATION = "pgkeel.dev/initialize"
SYNC_ANNOTATION = "pgkeel.dev/sync"
SWITCHOVER_ANNOTATION = "pgkeel.dev/switchover"
HISTORY_ANNOTATION = "pgkeel.dev/history"
VALUE_ANNOTATION_PREFIX = "pgkeel.dev/value-"  # + a key of VALUE_KEYS: {"value", "version"}
LABELLED_ROLES = (ROLE_PRIMARY, ROLE_REPLICA)


@dataclass(frozen=True)
class _Lease:
    """The leader Lease as read: the raw object (for the next PUT) and its parsed spec."""

    obj: dict[str, Any]
    holder: str | None
    term: int
    duration: int

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        spec = self.obj.get("spec") or {}
        return (self.holder, self.term, self.duration, spec.get("renewTime"), spec.get("acquireTime"))

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> _Lease:
        spec = obj.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        term = spec.get("leaseTransitions") or 0
        duration = spec.get("leaseDurationSeconds") or 0
        valid_holder = holder is None or isinstance(holder, str)
        if not valid_holder or not isinstance(term, int) or not isinstance(duration, int):
            raise DCSError(f"leader Lease has a malformed spec: {spec!r}")
        return cls(obj, holder, term, duration)


class KubernetesDCS(DCS):
    """One cluster (`scope`) in one namespace; see the module docstring for the layout and clocks."""

    def __init__(self, endpoint: Endpoint, namespace: str, scope: str, timeout: float = 1.0) -> None:
        self.scope = check_name("scope", scope)
        self.namespace = check_name("namespace", namespace)
        self.timeout = check_timeout(timeout)
        self.leader_name = leader_lease(scope)
        self.state_name = state_lease(scope)
        self.selector = ",".join(f"{k}={v}" for k, v in selector_labels(scope).items())
        self._client = KubeClient(endpoint, namespace)
        self._clock = ObservedClock()
        self._pods: dict[str, dict[str, Any]] = {}  # last listed metadata, for stale-label clean-up
        self._leader: str | None = None  # holder in the last view()

    # --- reading ---------------------------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + self.timeout

    def _get(self, name: str, deadline: float) -> dict[str, Any] | None:
        try:
            return self._client.get_lease(name, deadline)
        except NotFound:
            return None

    def _read_leader(self, deadline: float) -> tuple[_Lease | None, bool]:
        """The leader Lease and whether it is live by this process's clock."""
        lease, ends = self._read_leader_until(deadline)
        return lease, time.monotonic() < ends

    def _read_leader_until(self, deadline: float) -> tuple[_Lease | None, float]:
        """The leader Lease and when (this process's monotonic clock) it ends; 0 if not held."""
        obj = self._get(self.leader_name, deadline)
        if obj is None:
            return None, 0.0
        lease = _Lease.parse(obj)
        now = time.monotonic()
        seen = self._clock.observe("leader", lease.fingerprint, now)
        return lease, (seen + lease.duration) if lease.holder is not None else 0.0

    def view(self) -> ClusterView:
        deadline = self._deadline()
        lease, live = self._read_leader(deadline)
        state_obj = self._get(self.state_name, deadline)
        state = self._annotations(state_obj)
        pods = self._client.list_pods(self.selector, deadline)
        now = time.monotonic()
        leader = Leader(lease.holder, lease.term, float(lease.duration)) if lease and live and lease.holder else None
        self._leader = leader.holder if leader else None
        members: dict[str, Member] = {}
        listed: dict[str, dict[str, Any]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            name = meta.get("name")
            if not isinstance(name, str):
                continue
            listed[name] = meta
            raw = (meta.get("annotations") or {}).get(STATUS_ANNOTATION)
            if raw is None:
                continue
            try:
                record = json.loads(raw)
                data, ttl = record["data"], float(record["ttl"])
            except (ValueError, KeyError, TypeError):
                log.warning("pod %s has a malformed %s annotation; ignored", name, STATUS_ANNOTATION)
                continue
            if now - self._clock.observe("member/" + name, raw, now) < ttl:
                members[name] = Member(name, data)
        self._pods = listed  # one assignment: the roll thread reads it (pgkeel.dcs.k8s_pod)
        self._clock.forget_members(set(listed))
        sync = _json(state.get(SYNC_ANNOTATION))
        history = _json(state.get(HISTORY_ANNOTATION))
        return ClusterView(
            leader=leader,
            members=members,
            initialize=state.get(INITIALIZE_ANNOTATION),
            sync=_dict_or_none(sync.get("value")) if isinstance(sync, dict) else None,
            sync_version=int(sync.get("version", 0)) if isinstance(sync, dict) else 0,
            switchover=self._live_switchover(state_obj, state, deadline),
            history=_dict_or_none(history.get("value")) if isinstance(history, dict) else None,
            values=_values(state),
        )

    def _live_switchover(
        self, obj: dict[str, Any] | None, state: dict[str, str], deadline: float
    ) -> dict[str, Any] | None:
        """The pending request if its ttl has not run out on this process's clock; else remove it."""
        raw = state.get(SWITCHOVER_ANNOTATION)
        if raw is None:
            return None
        now = time.monotonic()
        try:
            record = json.loads(raw)
            value, ttl = record["value"], float(record["ttl"])
        except (KeyError, TypeError, ValueError):
            value, ttl = None, 0.0  # garbage, or written before requests expired: never act on it
        if isinstance(value, dict) and now - self._clock.observe("switchover", raw, now) < ttl:
            return value
        if obj is not None:  # best effort, and only if nothing changed since our read
            annotations = {k: v for k, v in state.items() if k != SWITCHOVER_ANNOTATION}
            try:
                self._client.replace_lease(
                    {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}, deadline
                )
            except (Conflict, NotFound, DCSError) as exc:
                log.debug("could not remove the expired switchover request: %s", exc)
        return None

    @staticmethod
    def _annotations(obj: dict[str, Any] | None) -> dict[str, str]:
        return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})

    # --- the leader lease ------------------------------------------------------------------
    def _new_lease(self, name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace, "labels": common_labels(self.scope)}
        if annotations:
            meta["annotations"] = annotations
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _write_leader(self, lease: _Lease | None, spec: dict[str, Any], deadline: float) -> bool:
        """Create or CAS-replace the leader Lease; False on a 409 (someone wrote since our read)."""
        sent = time.monotonic()
        try:
            if lease is None:
                answer = self._client.create_lease(self._new_lease(self.leader_name, spec), deadline)
            else:
                answer = self._client.replace_lease({**lease.obj, "spec": spec}, deadline)
        except Conflict:
            return False
        except NotFound:  # deleted between our read and write
            return False
        self._clock.wrote("leader", _Lease.parse(answer).fingerprint, sent)
        return True

    def _leader_op(self, judge: Callable[[_Lease | None, bool], dict[str, Any] | None]) -> bool:
        """Read, judge, write; after a 409 read and judge again, so only a real loss returns False."""
        deadline = self._deadline()
        while True:
            lease, live = self._read_leader(deadline)
            spec = judge(lease, live)
            if spec is None:
                return False
            if self._write_leader(lease, spec, deadline):
                return True

    def _holder_spec(self, holder: str, ttl: float, term: int, acquired: bool, old: dict[str, Any]) -> dict[str, Any]:
        now = micro_time()
        return {
            "holderIdentity": holder,
            "leaseDurationSeconds": lease_seconds(ttl),
            "acquireTime": now if acquired else old.get("acquireTime", now),
            "renewTime": now,
            "leaseTransitions": term,
        }

    def acquire_leader(self, name: str, ttl: float) -> bool:
        check_name("member name", name)
        lease_seconds(ttl)

        def judge(lease: _Lease | None, live: bool) -> dict[str, Any] | None:
            if live:
                return None
            term = (lease.term if lease else 0) + 1
            return self._holder_spec(name, ttl, term, True, {})

        return self._leader_op(judge)

    def renew_leader(self, name: str, ttl: float) -> bool:
        check_name("member name", name)
        lease_seconds(ttl)

        def judge(lease: _Lease | None, live: bool) -> dict[str, Any] | None:
            if lease is None or not live or lease.holder != name:
                return None
            return self._holder_spec(name, ttl, lease.term, False, lease.obj.get("spec") or {})

        return self._leader_op(judge)

    def release_leader(self, name: str) -> bool:
        check_name("member name", name)

        def judge(lease: _Lease | None, live: bool) -> dict[str, Any] | None:
            if lease is None or not live or lease.holder != name:
                return None
            spec = {k: v for k, v in (lease.obj.get("spec") or {}).items() if k != "holderIdentity"}
            return {**spec, "renewTime": micro_time()}

        return self._leader_op(judge)

    def take_over_leader(self, from_name: str, to_name: str, ttl: float) -> bool:
        check_name("member name", from_name)
        check_name("member name", to_name)
        lease_seconds(ttl)

        def judge(lease: _Lease | None, live: bool) -> dict[str, Any] | None:
            if lease is None or not live or lease.holder != from_name:
                return None
            return self._holder_spec(to_name, ttl, lease.term + 1, True, {})

        return self._leader_op(judge)

    # --- cluster-wide state (annotations on the state Lease) --------------------------------
    def _state_op(self, change: Callable[[dict[str, str]], bool]) -> bool:
        """Apply `change` to the state annotations by CAS; it returns False to leave them alone."""
        deadline = self._deadline()
        while True:
            obj = self._get(self.state_name, deadline)
            annotations = self._annotations(obj)
            if not change(annotations):
                return False
            try:
                if obj is None:
                    self._client.create_lease(self._new_lease(self.state_name, {}, annotations), deadline)
                else:
                    meta = {**obj["metadata"], "annotations": annotations}
                    self._client.replace_lease({**obj, "metadata": meta}, deadline)
                return True
            except (Conflict, NotFound):
                continue  # someone else changed the state in between: judge again on a fresh read

    def initialize(self, value: str) -> bool:
        def change(a: dict[str, str]) -> bool:
            if INITIALIZE_ANNOTATION in a:
                return False
            a[INITIALIZE_ANNOTATION] = value
            return True

        return self._state_op(change)

    def set_initialize(self, expected: str, value: str) -> bool:
        def change(a: dict[str, str]) -> bool:
            if a.get(INITIALIZE_ANNOTATION) != expected:
                return False
            a[INITIALIZE_ANNOTATION] = value
            return True

        return self._state_op(change)

    def clear_initialize(self, expected: str) -> bool:
        def change(a: dict[str, str]) -> bool:
            if a.get(INITIALIZE_ANNOTATION) != expected:
                return False
            del a[INITIALIZE_ANNOTATION]
            return True

        return self._state_op(change)

    def set_sync(self, value: dict[str, Any], expected_version: int) -> bool:
        return self._versioned_cas(SYNC_ANNOTATION, value, expected_version)

    def set_value(self, key: str, value: dict[str, Any], expected_version: int) -> bool:
        return self._versioned_cas(VALUE_ANNOTATION_PREFIX + check_value_key(key), value, expected_version)

    def _versioned_cas(self, annotation: str, value: dict[str, Any], expected_version: int) -> bool:
        """Write {"value", "version"} to `annotation` as the next version if it holds `expected_version` (0: none)."""

        def change(a: dict[str, str]) -> bool:
            current = _json(a.get(annotation))
            version = int(current.get("version", 0)) if isinstance(current, dict) else 0
            if version != expected_version:
                return False
            a[annotation] = json.dumps({"value": value, "version": version + 1}, sort_keys=True)
            return True

        return self._state_op(change)

    def set_switchover(self, value: dict[str, Any], ttl: float = 60.0) -> None:
        ttl = check_ttl(ttl)
        sent = time.monotonic()  # the request's clock starts no later than the call
        raw = json.dumps({"value": value, "ttl": ttl, "requestTime": micro_time()}, sort_keys=True)

        def change(a: dict[str, str]) -> bool:
            a[SWITCHOVER_ANNOTATION] = raw
            return True

        self._state_op(change)
        self._clock.wrote("switchover", raw, sent)

    def clear_switchover(self) -> None:
        self._state_op(lambda a: a.pop(SWITCHOVER_ANNOTATION, None) is not None)

    # --- the leader history (an annotation on the state Lease, written by the live holder) -----
    def set_history(self, name: str, value: dict[str, Any]) -> bool:
        check_name("member name", name)
        deadline = self._deadline()
        while True:
            lease, ends = self._read_leader_until(deadline)
            if lease is None or lease.holder != name or time.monotonic() >= ends:
                return False
            uid = (lease.obj.get("metadata") or {}).get("uid")
            obj = self._get(self.state_name, deadline)
            annotations = self._annotations(obj)
            try:
                stored = json.loads(annotations.get(HISTORY_ANNOTATION) or "null")
            except ValueError:
                stored = None  # garbage: the holder may replace it (view() reports it until then)
            if isinstance(stored, dict) and stored.get("lease") == uid and _term(stored) > lease.term:
                return False  # a later leader of this Lease has written it: we are stale
            annotations[HISTORY_ANNOTATION] = json.dumps(
                {"value": value, "holder": name, "term": lease.term, "lease": uid}, sort_keys=True
            )
            if time.monotonic() >= ends:
                return False  # our lease ran out while we read: do not send
            try:
                if obj is None:
                    self._client.create_lease(self._new_lease(self.state_name, {}, annotations), min(deadline, ends))
                else:
                    meta = {**obj["metadata"], "annotations": annotations}
                    self._client.replace_lease({**obj, "metadata": meta}, min(deadline, ends))
                return True
            except (Conflict, NotFound):
                continue  # the state changed in between: judge again, the leader Lease included

    # --- members (annotations and the role label on their own pods) ---------------------------
    def set_member(self, name: str, data: dict[str, Any], ttl: float) -> None:
        check_name("member name", name)
        check_ttl(ttl)
        raw = json.dumps({"data": data, "ttl": ttl, "renewTime": micro_time()}, sort_keys=True)
        role = data.get("role")
        label = role if role in LABELLED_ROLES else None
        patch = {"metadata": {"annotations": {STATUS_ANNOTATION: raw}, "labels": {ROLE_LABEL: label}}}
        deadline = self._deadline()
        sent = time.monotonic()
        try:
            self._client.patch_pod(name, patch, deadline)
        except NotFound as exc:
            raise DCSError(f"pod {name} not found: member records live on the member's own pod") from exc
        except Conflict as exc:  # a merge patch without resourceVersion has no precondition to fail
            raise DCSError(f"unexpected conflict patching pod {name}") from exc
        self._clock.wrote("member/" + name, raw, sent)
        if label == ROLE_PRIMARY and self._leader == name:
            self._strip_stale_primaries(name, deadline)

    def _strip_stale_primaries(self, me: str, deadline: float) -> None:
        """Best effort: a dead old primary cannot remove its own label; only if its pod is unchanged."""
        for name, meta in self._pods.items():
            if name == me or (meta.get("labels") or {}).get(ROLE_LABEL) != ROLE_PRIMARY:
                continue
            patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"), "labels": {ROLE_LABEL: None}}}
            try:
                self._client.patch_pod(name, patch, deadline)
                log.info("removed the stale %s label from pod %s", ROLE_LABEL, name)
            except (Conflict, NotFound, DCSError) as exc:
                log.debug("could not strip the role label of %s: %s", name, exc)

    def delete_member(self, name: str) -> None:
        check_name("member name", name)
        patch = {"metadata": {"annotations": {STATUS_ANNOTATION: None}, "labels": {ROLE_LABEL: None}}}
        try:
            self._client.patch_pod(name, patch, self._deadline())
        except NotFound:
            pass
        except Conflict as exc:
            raise DCSError(f"unexpected conflict patching pod {name}") from exc

    def own_pod(self, name: str) -> KubernetesPod:
        check_name("member name", name)
        return KubernetesPod(self._client, self.namespace, self.scope, name, lambda: self._pods, self.timeout)

    def close(self) -> None:
        self._client.close()


def _values(state: dict[str, str]) -> dict[str, Versioned]:
    found: dict[str, Versioned] = {}
    for annotation, raw in state.items():
        if not annotation.startswith(VALUE_ANNOTATION_PREFIX):
            continue
        record = _json(raw)
        if isinstance(record, dict) and isinstance(record.get("value"), dict):
            key = annotation[len(VALUE_ANNOTATION_PREFIX) :]
            found[key] = Versioned(record["value"], int(record.get("version", 0)))
    return found


def _dict_or_none(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DCSError(f"cluster state annotation holds a non-object: {str(value)[:100]!r}")
    return value


def _term(record: dict[str, Any]) -> int:
    term = record.get("term", 0)
    return term if isinstance(term, int) else 0


def _json(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise DCSError(f"malformed cluster state annotation: {raw[:100]!r}") from exc
