"""A small, honest Kubernetes API server: namespaced Leases, Pods and StatefulSets, nothing else.

No API server can run on our machines, so the Kubernetes store is tested against this one. It
keeps the semantics the store relies on, as the real server does:
- one cluster-wide resourceVersion, bumped by every change (not by a no-op update or patch);
- update (PUT) and patch with a stale metadata.resourceVersion → 409 Conflict; create of an
  existing name → 409 AlreadyExists; absent objects → 404 NotFound; all as `Status` objects;
- list with equality label selectors, watch as chunked JSON lines (ADDED/MODIFIED/DELETED),
  and a watch from a compacted resourceVersion → an ERROR event carrying 410 Expired;
- bearer-token authentication (401), and an `outage()` switch: hang, 503, or reset;
- the habits of a loaded server (`latency()`, `throttle()`, in fakes/kube_habits.py): a seeded
  latency profile with periodic spikes, and 429 TooManyRequests with `Retry-After` as priority
  and fairness sheds load — delays and refusals only, the semantics above stay as they are;
- pod DELETE as a real server does it: preconditions (uid, resourceVersion → 409), then a pod on a
  node is only marked (deletionTimestamp, deletionGracePeriodSeconds: still listed and patchable)
  until the kubelet — the test — has stopped it and calls `finish_pod_deletion`; an unscheduled pod
  goes at once;
- a StatefulSet controller with updateStrategy OnDelete: `status.updateRevision` changes only by
  `set_update_revision` (a template change), nothing is replaced by it, and a deleted pod of an
  ordinal below `replicas` is recreated at once from the update revision (label
  controller-revision-hash), with updatedReplicas/currentRevision kept as the controller keeps them;
  `scale_stateful_set` (`kubectl scale`, podManagementPolicy Parallel) creates missing ordinals and
  deletes those past `replicas`.
It records every authenticated call as (apiGroup, resource, verb), like the API server's
RequestInfo, so tests can check what a client did against an RBAC Role.
Binds to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .kube_habits import Habits, LatencyProfile

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # (group, resource, namespace, name)

# (group, resource) -> (apiVersion, kind)
KINDS = {
    ("coordination.k8s.io", "leases"): ("coordination.k8s.io/v1", "Lease"),
    ("", "pods"): ("v1", "Pod"),
    ("apps", "statefulsets"): ("apps/v1", "StatefulSet"),
}
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
DEFAULT_GRACE_SECONDS = 30  # a pod's terminationGracePeriodSeconds when its spec gives none
ROUTE = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[a-z0-9.-]+)/v1)/namespaces/(?P<ns>[a-z0-9-]+)/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?$"
)
# Go's RFC3339Micro layout, which the real server parses MicroTime with: exactly six fractional digits.
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """Answered to the client as a Status object with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def _not_found(key: Key) -> ApiError:
    group, res, _, name = key
    return ApiError(404, "NotFound", f'{_qualified(group, res)} "{name}" not found', {"name": name, "kind": res})


def _conflict(key: Key) -> ApiError:
    group, res, _, name = key
    message = (
        f'Operation cannot be fulfilled on {_qualified(group, res)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, {"name": name, "kind": res})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: null deletes a key, objects merge, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _has_list_or_directive(value: Any) -> bool:
    if isinstance(value, list):
        return True
    if isinstance(value, dict):
        return any(str(k).startswith("$") or _has_list_or_directive(v) for k, v in value.items())
    return False


def parse_selector(text: str) -> list[tuple[str, str, str | None]]:
    """Equality-based label selectors only (`a=b`, `a==b`, `a!=b`, `a`, `!a`); set-based → 400."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in filter(None, (t.strip() for t in text.split(","))):
        if " in " in raw or " notin " in raw or "(" in raw:
            raise ApiError(400, "BadRequest", f"fake API: set-based selectors are not supported: {raw!r}")
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            terms.append(("!=", key.strip(), value.strip()))
        elif "=" in raw:
            key, value = raw.replace("==", "=").split("=", 1)
            terms.append(("=", key.strip(), value.strip()))
        elif raw.startswith("!"):
            terms.append(("absent", raw[1:].strip(), None))
        else:
            terms.append(("exists", raw, None))
    return terms


def selector_matches(terms: list[tuple[str, str, str | None]], labels: dict[str, str]) -> bool:
    for op, key, value in terms:
        if (
            (op == "=" and labels.get(key) != value)
            or (op == "!=" and labels.get(key) == value)
            or (op == "exists" and key not in labels)
            or (op == "absent" and key in labels)
        ):
            return False
    return True


def _validate(key: Key, obj: Obj) -> None:
    """The checks a real server would fail a buggy client on (422 Invalid / 400 BadRequest)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or meta.get("name") != key[3]:
        raise ApiError(400, "BadRequest", f"the name of the object does not match the name on the URL ({key[3]})")
    if meta.get("namespace", key[2]) != key[2]:
        raise ApiError(400, "BadRequest", "the namespace of the object does not match the namespace on the URL")
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise ApiError(422, "Invalid", f"metadata.{field}: values must be strings")
    for label, value in (meta.get("labels") or {}).items():
        if not LABEL_VALUE.match(value):
            raise ApiError(422, "Invalid", f"metadata.labels: Invalid value {value!r} for {label}")
    if sum(len(k) + len(v) for k, v in (meta.get("annotations") or {}).items()) > 256 * 1024:
        raise ApiError(422, "Invalid", "metadata.annotations: Too long: must have at most 262144 bytes")
    if key[1] == "leases":
        spec = obj.get("spec") or {}
        for field in ("acquireTime", "renewTime"):
            if spec.get(field) is not None and not (isinstance(spec[field], str) and MICROTIME.match(spec[field])):
                raise ApiError(400, "BadRequest", f"spec.{field}: not a MicroTime: {spec[field]!r}")
        for field in ("leaseDurationSeconds", "leaseTransitions"):
            value = spec.get(field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ApiError(422, "Invalid", f"spec.{field}: must be a non-negative integer")


def _same(a: Obj, b: Obj) -> bool:
    """Equal apart from resourceVersion: such a write is a no-op and keeps the version."""
    strip = ({**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "resourceVersion"}} for o in (a, b))
    return next(strip) == next(strip)


class Store:
    """Objects, one resourceVersion counter, and a bounded event history for watches."""

    def __init__(self, history: int = 1000) -> None:
        self.cond = threading.Condition()
        self.objects: dict[Key, Obj] = {}
        # Never 0: a list answers with the store's revision, and "0" would make a watch from it mean
        # "from any version" (current state as ADDED), folding changes made meanwhile into one event.
        # etcd's revisions start at 1 for the same reason.
        self.rv = 1
        self.history = history
        self.events: list[tuple[int, Key, str, Obj]] = []
        self.compacted = 0  # watches must start at or after this resourceVersion

    def _record(self, key: Key, kind: str, obj: Obj) -> None:
        self.events.append((self.rv, key, kind, copy.deepcopy(obj)))
        if len(self.events) > self.history:
            self.compacted = self.events.pop(0)[0]
        self.cond.notify_all()

    def compact(self) -> None:
        with self.cond:
            self.events.clear()
            self.compacted = self.rv

    def get(self, key: Key) -> Obj:
        with self.cond:
            if key not in self.objects:
                raise _not_found(key)
            return copy.deepcopy(self.objects[key])

    def list(self, group: str, res: str, ns: str, selector: str) -> tuple[list[Obj], int]:
        terms = parse_selector(selector)
        with self.cond:
            items = [
                copy.deepcopy(o)
                for (g, r, n, _), o in sorted(self.objects.items())
                if (g, r, n) == (group, res, ns) and selector_matches(terms, o["metadata"].get("labels") or {})
            ]
            return items, self.rv

    def create(self, key: Key, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {}).setdefault("name", key[3])
        _validate(key, obj)
        if obj["metadata"].get("resourceVersion"):
            raise ApiError(400, "BadRequest", "resourceVersion should not be set on objects to be created")
        api_version, kind = KINDS[key[:2]]
        with self.cond:
            if key in self.objects:
                group, res, _, name = key
                message = f'{_qualified(group, res)} "{name}" already exists'
                raise ApiError(409, "AlreadyExists", message, {"name": name, "kind": res})
            self.rv += 1
            obj.update(apiVersion=api_version, kind=kind)
            obj["metadata"].update(
                namespace=key[2],
                uid=str(uuid.uuid4()),
                resourceVersion=str(self.rv),
                creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            self.objects[key] = obj
            self._record(key, "ADDED", obj)
            return copy.deepcopy(obj)

    def _write(self, key: Key, new: Obj, expected_rv: str | None) -> Obj:
        """Replace under the lock: precondition on resourceVersion, validation, no bump for a no-op."""
        current = self.objects.get(key)
        if current is None:
            raise _not_found(key)
        if expected_rv and expected_rv != current["metadata"]["resourceVersion"]:
            raise _conflict(key)
        for field in ("uid", "creationTimestamp", "namespace"):
            new["metadata"][field] = current["metadata"][field]
        new.update(apiVersion=current["apiVersion"], kind=current["kind"])
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        _validate(key, new)
        if _same(new, current):
            return copy.deepcopy(current)
        self.rv += 1
        new["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[key] = new
        self._record(key, "MODIFIED", new)
        return copy.deepcopy(new)

    def update(self, key: Key, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        if not isinstance(obj.get("metadata"), dict) or obj["metadata"].get("name") != key[3]:
            raise ApiError(400, "BadRequest", f"the name of the object does not match the name on the URL ({key[3]})")
        with self.cond:
            return self._write(key, obj, obj["metadata"].get("resourceVersion"))

    def patch(self, key: Key, patch: Obj) -> Obj:
        if not isinstance(patch, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        with self.cond:
            if key not in self.objects:
                raise _not_found(key)
            new = merge_patch(self.objects[key], patch)
            if new.get("metadata", {}).get("name") != key[3]:
                raise ApiError(422, "Invalid", "metadata.name: field is immutable")
            return self._write(key, new, expected)

    def delete(self, key: Key, expected_rv: str | None, expected_uid: str | None = None) -> Obj:
        """Remove now (what the API server does once a pod's grace period is over, or for any other kind)."""
        with self.cond:
            current = self._precondition(key, expected_rv, expected_uid)
            del self.objects[key]
            self.rv += 1
            current["metadata"]["resourceVersion"] = str(self.rv)
            self._record(key, "DELETED", current)
            return copy.deepcopy(current)

    def mark_deleting(self, key: Key, grace: int, expected_rv: str | None, expected_uid: str | None) -> Obj:
        """Graceful deletion of a scheduled pod: deletionTimestamp and deletionGracePeriodSeconds are set and the pod
        stays (listed, patchable) until the kubelet has stopped its containers; a second delete changes nothing."""
        with self.cond:
            current = self._precondition(key, expected_rv, expected_uid)
            meta = current["metadata"]
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(current)
            ends = datetime.now(UTC).timestamp() + grace
            meta["deletionTimestamp"] = datetime.fromtimestamp(ends, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["deletionGracePeriodSeconds"] = grace
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            self._record(key, "MODIFIED", current)
            return copy.deepcopy(current)

    def _precondition(self, key: Key, expected_rv: str | None, expected_uid: str | None) -> Obj:
        """DeleteOptions.preconditions: a uid or resourceVersion other than the object's is a 409, as on a real one."""
        current = self.objects.get(key)
        if current is None:
            raise _not_found(key)
        meta = current["metadata"]
        for field, expected in (("uid", expected_uid), ("resourceVersion", expected_rv)):
            if expected and expected != meta[field]:
                label = "UID" if field == "uid" else "ResourceVersion"
                message = f"Precondition failed: {label} in precondition: {expected}, {label} in object meta: "
                raise ApiError(409, "Conflict", message + meta[field], {"name": key[3], "kind": key[1]})
        return current


class FakeKubeApi:
    """The server: start(), url, token, stop(); direct helpers for fixtures; call log; outage()."""

    def __init__(self, token: str = "fake-token", history: int = 1000) -> None:
        self.token = token
        self.store = Store(history)
        self.calls: list[tuple[str, str, str]] = []
        self.outage_mode: str | None = None
        self._outage_over = threading.Event()
        self._stopping = threading.Event()
        self.habits = Habits()  # latency and 429s; none until a test asks
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeKubeApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-kube-api", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._stopping.set()
        self._outage_over.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- faults -------------------------------------------------------------------------
    @contextlib.contextmanager
    def outage(self, mode: str = "hang") -> Iterator[None]:
        """hang: requests get no answer, then the connection is dropped; unavailable: 503; reset: closed at once."""
        if mode not in ("hang", "unavailable", "reset"):
            raise ValueError(mode)
        self._outage_over.clear()
        self.outage_mode = mode
        try:
            yield
        finally:
            self.outage_mode = None
            self._outage_over.set()

    @contextlib.contextmanager
    def latency(self, **profile: Any) -> Iterator[LatencyProfile]:
        """Every request waits as `LatencyProfile(**profile)` says while inside; see fakes/kube_habits.py."""
        with self.habits.latency(LatencyProfile(**profile)) as active:
            yield active

    def throttle(self, n: int) -> None:
        """The next n requests are answered 429 TooManyRequests with `Retry-After: 1` (APF shedding load)."""
        self.habits.throttle(n)

    # --- deletion, the kubelet's part and the StatefulSet controller's ---------------------------
    def delete(self, key: Key, options: Obj) -> Obj:
        """DELETE as the API server does it: preconditions (409), then a scheduled pod is only marked
        (deletionTimestamp; the kubelet stops it and finishes the deletion), anything else goes at once."""
        pre = options.get("preconditions") or {}
        rv, uid = pre.get("resourceVersion"), pre.get("uid")
        if key[1] == "pods":
            pod = self.store.get(key)
            grace = options.get("gracePeriodSeconds")
            if grace is None:
                grace = pod.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
            if pod.get("spec", {}).get("nodeName") and int(grace) > 0:
                return self.store.mark_deleting(key, int(grace), rv, uid)
            gone = self.store.delete(key, rv, uid)
            self._recreate(key[2], gone)
            return gone
        self.store.delete(key, rv, uid)
        details = {"name": key[3], "group": key[0], "kind": key[1], "uid": uid or ""}
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def finish_pod_deletion(self, namespace: str, name: str) -> None:
        """The kubelet's final delete (grace 0) once the containers stopped; the controller then recreates the pod."""
        gone = self.store.delete(("", "pods", namespace, name), None)
        self._recreate(namespace, gone)

    def pods(self, namespace: str) -> list[Obj]:
        return self.store.list("", "pods", namespace, "")[0]

    def terminating_pods(self, namespace: str) -> list[Obj]:
        items, _ = self.store.list("", "pods", namespace, "")
        return [p for p in items if p["metadata"].get("deletionTimestamp")]

    def create_stateful_set(
        self, namespace: str, name: str, replicas: int, labels: dict[str, str], revision: str, node: str = "node-a"
    ) -> Obj:
        """A StatefulSet (OnDelete) and its pods <name>-0 … as its controller makes them, all on `revision`."""
        sts = {
            "metadata": {"name": name, "labels": dict(labels), "generation": 1},
            "spec": {
                "replicas": replicas,
                "serviceName": f"{name}-hl",
                "selector": {"matchLabels": dict(labels)},
                "updateStrategy": {"type": "OnDelete"},
                "template": {"metadata": {"labels": dict(labels)}, "spec": {"nodeName": node, "containers": []}},
            },
            "status": {"observedGeneration": 1, "replicas": replicas, "currentRevision": revision,
                       "updateRevision": revision, "updatedReplicas": replicas},
        }
        created = self.store.create(("apps", "statefulsets", namespace, name), sts)
        for ordinal in range(replicas):
            self._controller_pod(namespace, created, ordinal)
        return created

    def set_update_revision(self, namespace: str, name: str, revision: str) -> None:
        """A changed pod template: the controller records a new revision as status.updateRevision (OnDelete: and
        replaces nothing)."""
        key = ("apps", "statefulsets", namespace, name)
        sts = self.store.get(key)
        generation = int(sts["metadata"].get("generation", 1)) + 1
        self.store.patch(key, {"metadata": {"generation": generation},
                               "status": {"observedGeneration": generation, "updateRevision": revision}})
        self._count_updated(namespace, name)

    def scale_stateful_set(self, namespace: str, name: str, replicas: int) -> None:
        """`kubectl scale`: spec.replicas changes, and the controller (podManagementPolicy Parallel) creates the
        missing ordinals at once from the update revision and deletes those >= replicas (gracefully: the kubelet
        stops them), highest first; a deleted pod of such an ordinal is not recreated."""
        key = ("apps", "statefulsets", namespace, name)
        sts = self.store.get(key)
        generation = int(sts["metadata"].get("generation", 1)) + 1
        sts = self.store.patch(key, {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
                                     "status": {"observedGeneration": generation}})
        pods, _ = self.store.list("", "pods", namespace, "")
        owned = {p["metadata"]["name"]: p for p in pods
                 if any(o.get("uid") == sts["metadata"]["uid"] for o in p["metadata"].get("ownerReferences") or [])}
        for ordinal in range(replicas):
            if f"{name}-{ordinal}" not in owned:
                self._controller_pod(namespace, sts, ordinal)
        for pod in sorted(owned.values(), key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1])):
            if int(pod["metadata"]["name"].rsplit("-", 1)[1]) >= replicas:
                self.delete(("", "pods", namespace, pod["metadata"]["name"]), {})
        self._count_updated(namespace, name)

    def _controller_pod(self, namespace: str, sts: Obj, ordinal: int) -> Obj:
        name = f"{sts['metadata']['name']}-{ordinal}"
        labels = {**sts["spec"]["template"]["metadata"]["labels"], POD_NAME_LABEL: name,
                  REVISION_LABEL: sts["status"]["updateRevision"]}
        owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"],
                 "uid": sts["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        pod = {
            "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
            "spec": copy.deepcopy(sts["spec"]["template"]["spec"]),
            "status": {"podIP": "127.0.0.1"},
        }
        return self.store.create(("", "pods", namespace, name), pod)

    def _recreate(self, namespace: str, gone: Obj) -> None:
        """The StatefulSet controller: a deleted pod of ordinal < replicas comes back, from the update revision."""
        owner = next((o for o in gone["metadata"].get("ownerReferences") or [] if o.get("kind") == "StatefulSet"), None)
        sts = self.get("apps", "statefulsets", namespace, owner["name"]) if owner else None
        if sts is None:
            return
        ordinal = int(gone["metadata"]["name"].rsplit("-", 1)[1])
        if ordinal < sts["spec"]["replicas"]:
            self._controller_pod(namespace, sts, ordinal)
        self._count_updated(namespace, sts["metadata"]["name"])

    def _count_updated(self, namespace: str, name: str) -> None:
        key = ("apps", "statefulsets", namespace, name)
        sts = self.store.get(key)
        revision = sts["status"]["updateRevision"]
        pods, _ = self.store.list("", "pods", namespace, "")
        owned = [p for p in pods if any(o.get("uid") == sts["metadata"]["uid"]
                                        for o in p["metadata"].get("ownerReferences") or [])]
        updated = sum(1 for p in owned if p["metadata"]["labels"].get(REVISION_LABEL) == revision)
        status: Obj = {"replicas": len(owned), "updatedReplicas": updated}
        if updated == sts["spec"]["replicas"]:
            status["currentRevision"] = revision  # OnDelete: current once every pod runs the update revision
        self.store.patch(key, {"status": status})

    # --- direct access for fixtures (what a StatefulSet controller would do) ---------------
    def create_pod(self, namespace: str, name: str, labels: dict[str, str], ip: str = "127.0.0.1") -> Obj:
        pod = {"metadata": {"name": name, "labels": dict(labels)}, "spec": {"containers": []}, "status": {"podIP": ip}}
        return self.store.create(("", "pods", namespace, name), pod)

    def get(self, group: str, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return self.store.get((group, resource, namespace, name))
        except ApiError:
            return None

    def pod(self, namespace: str, name: str) -> Obj | None:
        return self.get("", "pods", namespace, name)

    def lease(self, namespace: str, name: str) -> Obj | None:
        return self.get("coordination.k8s.io", "leases", namespace, name)

    def verbs(self) -> set[tuple[str, str, str]]:
        return set(self.calls)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stdlib's 5 drops SYNs when a few clients connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client timed out first (latency, outage): nothing to tell it, nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeKubeApi

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Obj, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid JSON body: {exc}") from exc

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.fake
        mode = fake.outage_mode
        if mode == "hang":
            fake._outage_over.wait(timeout=60)
            self.close_connection = True
            return
        if mode == "reset":
            self.close_connection = True
            return
        started = time.monotonic()
        try:
            body = self._body()
            if mode == "unavailable":
                raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
            if fake.habits.take_throttle():  # APF rejects before authentication and routing
                retry = {"Retry-After": str(fake.habits.retry_after)}
                self._send(429, ApiError(429, "TooManyRequests", "Too many requests, please try again later.").status(),
                           retry)
                return
            fake.habits.delay(started)
            self._check_auth()
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            match = ROUTE.match(url.path)
            if match is None or (match["group"] or "", match["res"]) not in KINDS:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({url.path})")
            group, res, ns, name = match["group"] or "", match["res"], match["ns"], match["name"]
            watch = query.get("watch") in ("true", "1")
            verb = self._verb(method, name, watch)
            fake.calls.append((group, res, verb))
            if verb == "watch":
                self._watch(group, res, ns, query)
                return
            code, answer = self._dispatch(verb, (group, res, ns, name or ""), body, query)
            try:
                self._send(code, answer)
            finally:  # also when the client gave up first: what the server took is the point
                fake.habits.seen(time.monotonic() - started)
        except ApiError as exc:
            self._send(exc.code, exc.status())

    def _check_auth(self) -> None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.fake.token:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    @staticmethod
    def _verb(method: str, name: str | None, watch: bool) -> str:
        if method == "GET":
            return "get" if name else ("watch" if watch else "list")
        verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
        if (method == "POST") == bool(name):  # create is on the collection; the rest on one object
            raise ApiError(405, "MethodNotAllowed", f"fake API: {method} not supported here")
        return verbs[method]

    def _dispatch(self, verb: str, key: Key, body: Any, query: dict[str, str]) -> tuple[int, Obj]:
        store = self.fake.store
        group, res, ns, _ = key
        if verb == "get":
            return 200, store.get(key)
        if verb == "list":
            items, rv = store.list(group, res, ns, query.get("labelSelector", ""))
            api_version, kind = KINDS[(group, res)]
            return 200, {"apiVersion": api_version, "kind": kind + "List", "metadata": {"resourceVersion": str(rv)},
                         "items": items}
        if verb == "create":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a create needs an object body")
            name = (body.get("metadata") or {}).get("name")
            if not name:
                raise ApiError(422, "Invalid", "metadata.name: Required value")
            return 201, store.create((group, res, ns, name), body)
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "an update needs an object body")
            return 200, store.update(key, body)
        if verb == "patch":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in (MERGE_PATCH, STRATEGIC_PATCH):
                raise ApiError(415, "UnsupportedMediaType", f"fake API: patch type {ctype!r} not supported")
            if ctype == STRATEGIC_PATCH and _has_list_or_directive(body):
                raise ApiError(415, "UnsupportedMediaType", "fake API: strategic merge of lists not supported")
            return 200, store.patch(key, body)
        return 200, self.fake.delete(key, body if isinstance(body, dict) else {})

    def _chunk(self, obj: Obj) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, group: str, res: str, ns: str, query: dict[str, str]) -> None:
        store, fake = self.fake.store, self.fake
        terms = parse_selector(query.get("labelSelector", ""))
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        start = query.get("resourceVersion", "")
        try:
            if start in ("", "0"):  # "from any version": the current state as ADDED events first
                items, last = store.list(group, res, ns, query.get("labelSelector", ""))
                for item in items:
                    self._chunk({"type": "ADDED", "object": item})
            else:
                last = int(start)
                if last < store.compacted:
                    gone = ApiError(410, "Expired", f"too old resource version: {last} ({store.compacted})")
                    self._chunk({"type": "ERROR", "object": gone.status()})
                    return
            while time.monotonic() < deadline and not fake._stopping.is_set() and fake.outage_mode is None:
                with store.cond:
                    pending = [e for e in store.events if e[0] > last]
                    if not pending:
                        store.cond.wait(timeout=0.1)
                        continue
                for rv, (g, r, n, _), kind, obj in pending:
                    last = rv
                    if (g, r, n) == (group, res, ns) and selector_matches(terms, obj["metadata"].get("labels") or {}):
                        self._chunk({"type": kind, "object": obj})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        with contextlib.suppress(OSError):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
