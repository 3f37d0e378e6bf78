"""The fake API server answers the official client the way a real one would (so tests against it mean something)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

NS = "db"
FakeKubeApi = Any  # conftest's import


@pytest.fixture
def api(kube_api: FakeKubeApi) -> Iterator[client.ApiClient]:
    config = client.Configuration(host=kube_api.url)
    config.api_key = {"BearerToken": f"Bearer {kube_api.token}"}
    config.retries = False
    with client.ApiClient(config) as api_client:
        yield api_client


def lease(name: str, holder: str = "a") -> dict[str, Any]:
    # No MicroTime here: the client's generated models re-serialise it without the six fraction digits
    # the server requires (see test_microtime_needs_six_fraction_digits), which is why the store sends raw JSON.
    spec = {"holderIdentity": holder, "leaseDurationSeconds": 3}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec}


def test_create_conflicts_and_stale_updates(api: client.ApiClient) -> None:
    co = client.CoordinationV1Api(api)
    created = co.create_namespaced_lease(NS, lease("x"))
    with pytest.raises(client.ApiException) as exc:
        co.create_namespaced_lease(NS, lease("x"))
    assert exc.value.status == 409 and "AlreadyExists" in exc.value.body
    fresh = co.read_namespaced_lease("x", NS)
    fresh.spec.holder_identity = "b"
    updated = co.replace_namespaced_lease("x", NS, fresh)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    with pytest.raises(client.ApiException) as exc:
        co.replace_namespaced_lease("x", NS, fresh)  # carries the old resourceVersion
    assert exc.value.status == 409 and '"reason": "Conflict"' in exc.value.body
    with pytest.raises(client.ApiException) as exc:
        co.read_namespaced_lease("absent", NS)
    assert exc.value.status == 404


def test_noop_update_keeps_resource_version(kube_api: FakeKubeApi) -> None:
    obj = kube_api.create_pod(NS, "p", {"a": "b"})
    again = kube_api.store.patch(("", "pods", NS, "p"), {"metadata": {"labels": {"a": "b"}}})
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_microtime_needs_six_fraction_digits(api: client.ApiClient) -> None:
    co = client.CoordinationV1Api(api)
    body = lease("y")
    body["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"  # what the API server itself writes
    with pytest.raises(client.ApiException) as exc:  # the model drops ".000000" on the way out
        co.create_namespaced_lease(NS, body, _preload_content=False)
    assert exc.value.status == 400 and "MicroTime" in exc.value.body


def test_unauthenticated_is_401(kube_api: FakeKubeApi) -> None:
    config = client.Configuration(host=kube_api.url)
    with client.ApiClient(config) as api_client, pytest.raises(client.ApiException) as exc:
        client.CoreV1Api(api_client).list_namespaced_pod(NS)
    assert exc.value.status == 401


def test_watch_streams_pod_events_by_selector(api: client.ApiClient, kube_api: FakeKubeApi) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_pod(NS, label_selector="app=x").metadata.resource_version
    events: list[tuple[str, str]] = []
    w = watch.Watch()

    def consume() -> None:
        for event in w.stream(core.list_namespaced_pod, NS, label_selector="app=x", resource_version=start,
                              timeout_seconds=5):
            events.append((event["type"], event["object"].metadata.name))
            if len(events) == 2:
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    kube_api.create_pod(NS, "other", {"app": "y"})
    kube_api.create_pod(NS, "p0", {"app": "x"})
    core.patch_namespaced_pod("p0", NS, {"metadata": {"labels": {"role": "primary"}}},
                              _content_type="application/merge-patch+json")
    thread.join(timeout=10)
    assert events == [("ADDED", "p0"), ("MODIFIED", "p0")]


def test_watch_from_compacted_version_is_410(api: client.ApiClient, kube_api: FakeKubeApi) -> None:
    first = kube_api.create_pod(NS, "p0", {"app": "x"})["metadata"]["resourceVersion"]
    kube_api.create_pod(NS, "p1", {"app": "x"})
    kube_api.store.compact()  # the history before now is gone, as after an etcd compaction
    core = client.CoreV1Api(api)
    with pytest.raises(client.ApiException) as exc:
        for _ in watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=first, timeout_seconds=2):
            pass
    assert exc.value.status == 410


def test_scaling_the_stateful_set_creates_and_deletes_ordinals_as_the_controller_does(
    kube_api: FakeKubeApi, api: client.ApiClient,
) -> None:
    labels = {"app": "pg"}
    kube_api.create_stateful_set(NS, "pg", 3, labels, revision="pg-1")
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    before = apps.read_namespaced_stateful_set("pg", NS)
    kube_api.scale_stateful_set(NS, "pg", 5)
    sts = apps.read_namespaced_stateful_set("pg", NS)
    assert sts.spec.replicas == 5 and sts.metadata.generation == before.metadata.generation + 1
    assert int(sts.metadata.resource_version) > int(before.metadata.resource_version)
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(NS).items}
    assert set(pods) == {f"pg-{i}" for i in range(5)}
    assert pods["pg-4"].metadata.labels["controller-revision-hash"] == "pg-1"
    assert pods["pg-4"].metadata.owner_references[0].uid == sts.metadata.uid
    kube_api.scale_stateful_set(NS, "pg", 3)  # pods on a node are only marked; the kubelet finishes
    assert {p["metadata"]["name"] for p in kube_api.terminating_pods(NS)} == {"pg-3", "pg-4"}
    for name in ("pg-4", "pg-3"):
        kube_api.finish_pod_deletion(NS, name)
    assert {p.metadata.name for p in core.list_namespaced_pod(NS).items} == {"pg-0", "pg-1", "pg-2"}
    assert apps.read_namespaced_stateful_set("pg", NS).status.updated_replicas == 3


def test_latency_profile_tail_and_spike(kube_api: FakeKubeApi, api: client.ApiClient) -> None:
    """Most requests fast, about 1 % in the tail, and inside a spike every request waits the spike."""
    kube_api.create_pod(NS, "p", {"a": "b"})
    core = client.CoreV1Api(api)
    with kube_api.latency(base=0.001, p99=0.3, tail=0.05, spike_every=100, spike=0.4, first_spike=100):
        for _ in range(100):
            core.read_namespaced_pod("p", NS)
    durations = kube_api.habits.durations
    assert kube_api.habits.percentile(0.5) < 0.05
    assert 1 <= sum(d > 0.05 for d in durations) <= 15 and max(durations) < 0.4
    with kube_api.latency(base=0.001, p99=0.001, spike_every=100, spike=0.4, first_spike=0):
        started = time.monotonic()
        core.read_namespaced_pod("p", NS)
        assert time.monotonic() - started >= 0.4
    assert kube_api.habits.profile is None


def test_throttle_answers_429_with_retry_after_and_applies_nothing(
    kube_api: FakeKubeApi, api: client.ApiClient
) -> None:
    co = client.CoordinationV1Api(api)
    kube_api.throttle(1)
    with pytest.raises(client.ApiException) as exc:
        co.create_namespaced_lease(NS, lease("t"))
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "1"
    assert kube_api.lease(NS, "t") is None
    co.create_namespaced_lease(NS, lease("t"))  # only the next n: this one goes through
