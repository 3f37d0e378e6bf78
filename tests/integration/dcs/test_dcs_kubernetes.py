"""kubernetes-only behaviour: 409 vs outage, retries on a flaky server, observer-clock expiry, pod labels, RBAC."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pgkeel.dcs import DCSError, open_dcs
from pgkeel.dcs.k8s_client import Endpoint
from pgkeel.dcs.k8s_contract import AGENT_API_CALLS, ROLE_LABEL, STATUS_ANNOTATION, leader_lease, state_lease
from pgkeel.dcs.kubernetes import HISTORY_ANNOTATION, SWITCHOVER_ANNOTATION, KubernetesDCS

NS = "pgkeel-test"  # conftest.K8S_NAMESPACE
Backend = Any  # conftest's KubernetesBackend


def label(backend: Backend, pod: str) -> str | None:
    return (backend.api.pod(NS, pod)["metadata"].get("labels") or {}).get(ROLE_LABEL)


def test_stale_write_is_a_lost_race_not_an_error(kubernetes_backend: Backend, scope: str) -> None:
    a, b = kubernetes_backend.open(scope), kubernetes_backend.open(scope)
    assert a.acquire_leader("n0", 5.0)
    lease = kubernetes_backend.api.lease(NS, leader_lease(scope))
    assert b.renew_leader("n0", 5.0)  # moves the resourceVersion on
    stale = {**lease, "spec": {**lease["spec"], "holderIdentity": "n1"}}
    with pytest.raises(Exception) as conflict:
        kubernetes_backend.api.store.update(("coordination.k8s.io", "leases", NS, lease["metadata"]["name"]), stale)
    assert getattr(conflict.value, "code", None) == 409
    assert not b.acquire_leader("n1", 5.0)
    assert a.view().leader.holder == "n0"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["unavailable", "reset", "hang"])
def test_outage_modes_raise_dcserror_within_timeout(kubernetes_backend: Backend, scope: str, mode: str) -> None:
    store = kubernetes_backend.open(scope, timeout=0.5)
    assert store.acquire_leader("n0", 30.0)
    with kubernetes_backend.api.outage(mode):
        for call in (store.view, lambda: store.renew_leader("n0", 30.0), lambda: store.set_member("n0", {}, 5.0)):
            started = time.monotonic()
            with pytest.raises(DCSError):
                call()
            assert time.monotonic() - started < 0.9
    assert store.renew_leader("n0", 30.0)


def test_refused_connection_is_dcserror(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "token").write_text("x")
    store = KubernetesDCS(Endpoint(f"http://127.0.0.1:{port}", tmp_path / "token"), NS, "c", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DCSError):
        store.view()
    assert time.monotonic() - started < 0.9
    store.close()


def test_brief_503_is_retried_inside_the_timeout(kubernetes_backend: Backend, scope: str) -> None:
    """A flaky API server must not cost a healthy primary its lease."""
    store = kubernetes_backend.open(scope, timeout=1.0)
    assert store.acquire_leader("n0", 30.0)
    with kubernetes_backend.api.outage("unavailable"):
        timer = threading.Timer(0.2, lambda: setattr(kubernetes_backend.api, "outage_mode", None))
        timer.start()
        assert store.renew_leader("n0", 30.0)
        timer.join()


def test_wrong_token_is_dcserror(kubernetes_backend: Backend, scope: str, tmp_path: Path) -> None:
    (tmp_path / "bad").write_text("not-the-token")
    store = KubernetesDCS(Endpoint(kubernetes_backend.api.url, tmp_path / "bad"), NS, scope, timeout=0.5)
    with pytest.raises(DCSError, match="401"):
        store.view()
    store.close()


def test_expiry_uses_the_observers_clock_not_renew_time(kubernetes_backend: Backend, scope: str) -> None:
    """A lease whose renewTime is years old is still live until a fresh observer has watched it for its duration."""
    kubernetes_backend.api.store.create(
        ("coordination.k8s.io", "leases", NS, leader_lease(scope)),
        {
            "metadata": {"name": leader_lease(scope)},
            "spec": {
                "holderIdentity": "n0",
                "leaseDurationSeconds": 1,
                "leaseTransitions": 4,
                "renewTime": "2001-01-01T00:00:00.000000Z",
                "acquireTime": "2001-01-01T00:00:00.000000Z",
            },
        },
    )
    store = kubernetes_backend.open(scope)
    first_seen = time.monotonic()
    assert store.view().leader is not None
    assert not store.acquire_leader("n1", 1.0)
    while store.view().leader is not None:
        time.sleep(0.05)
    assert time.monotonic() - first_seen >= 0.9
    assert store.acquire_leader("n1", 1.0)
    assert store.view().leader.term == 5  # type: ignore[union-attr]


def test_member_publish_patches_role_label(kubernetes_backend: Backend, scope: str) -> None:
    store = kubernetes_backend.open(scope)
    store.set_member("n1", {"role": "replica"}, 5.0)
    assert label(kubernetes_backend, "n1") == "replica"
    store.set_member("n1", {"role": "uninitialized"}, 5.0)
    assert label(kubernetes_backend, "n1") is None, "only primary/replica are routable roles"
    store.set_member("n1", {"role": "replica"}, 5.0)
    store.delete_member("n1")
    assert label(kubernetes_backend, "n1") is None
    assert STATUS_ANNOTATION not in (kubernetes_backend.api.pod(NS, "n1")["metadata"].get("annotations") or {})
    with pytest.raises(DCSError, match="not found"):
        store.set_member("no-such-pod", {"role": "replica"}, 5.0)


def test_new_primary_strips_a_dead_primarys_label(kubernetes_backend: Backend, scope: str) -> None:
    old, new = kubernetes_backend.open(scope), kubernetes_backend.open(scope)
    assert old.acquire_leader("n0", 1.0)
    old.set_member("n0", {"role": "primary"}, 5.0)
    assert label(kubernetes_backend, "n0") == "primary"
    # n0 dies; n1 waits out the lease, takes it, and publishes itself as primary.
    while new.view().leader is not None:
        time.sleep(0.05)
    assert new.acquire_leader("n1", 1.0)
    new.view()
    new.set_member("n1", {"role": "primary"}, 5.0)
    assert label(kubernetes_backend, "n1") == "primary"
    assert label(kubernetes_backend, "n0") is None


def test_calls_stay_within_the_agents_role(kubernetes_backend: Backend, scope: str) -> None:
    api = kubernetes_backend.api
    api.calls.clear()
    store = kubernetes_backend.open(scope)
    store.view()
    assert store.acquire_leader("n0", 5.0) and store.renew_leader("n0", 5.0)
    assert store.take_over_leader("n0", "n1", 5.0) and store.release_leader("n1")
    assert store.initialize("x") and store.set_initialize("x", "y") and store.clear_initialize("y")
    assert store.set_sync({"a": 1}, 0)
    store.set_switchover({"to": "n1"}, ttl=5.0)
    store.view()
    store.clear_switchover()
    assert store.acquire_leader("n0", 5.0) and store.set_history("n0", {"leader": "n0"})
    store.set_member("n0", {"role": "primary"}, 5.0)
    store.delete_member("n0")
    assert api.verbs() <= set(AGENT_API_CALLS), sorted(api.verbs() - set(AGENT_API_CALLS))
    assert ("coordination.k8s.io", "leases", "update") in api.verbs()


def test_open_dcs_kubernetes_url(monkeypatch: pytest.MonkeyPatch, kubernetes_backend: Backend, scope: str) -> None:
    monkeypatch.setenv("PGKEEL_K8S_API", kubernetes_backend.api.url)
    monkeypatch.setenv("PGKEEL_K8S_TOKEN_FILE", str(kubernetes_backend.endpoint.token_file))
    store = open_dcs(f"kubernetes://{NS}/{scope}", scope)
    assert store.acquire_leader("n0", 5.0)
    store.close()
    with pytest.raises(ValueError):
        open_dcs(f"kubernetes://{NS}/other-cluster", scope)
    with pytest.raises(ValueError):
        open_dcs("kubernetes://", scope)


def _state_annotations(backend: Backend, scope: str) -> dict[str, str]:
    lease = backend.api.lease(NS, state_lease(scope))
    return dict((lease or {}).get("metadata", {}).get("annotations") or {})


def _set_state_annotation(backend: Backend, scope: str, key: str, value: str) -> None:
    lease = backend.api.lease(NS, state_lease(scope))
    lease["metadata"].setdefault("annotations", {})[key] = value
    backend.api.store.update(("coordination.k8s.io", "leases", NS, state_lease(scope)), lease)


def test_history_is_fenced_by_term(kubernetes_backend: Backend, scope: str) -> None:
    """The state and leader Leases are separate objects: a write of a lower term than the stored one is stale."""
    store = kubernetes_backend.open(scope)
    assert store.acquire_leader("n0", 5.0)
    assert store.set_history("n0", {"leader": "n0"})
    record = json.loads(_state_annotations(kubernetes_backend, scope)[HISTORY_ANNOTATION])
    uid = kubernetes_backend.api.lease(NS, leader_lease(scope))["metadata"]["uid"]
    assert (record["holder"], record["lease"]) == ("n0", uid)
    later = {**record, "term": record["term"] + 1, "value": {"leader": "n9"}}
    _set_state_annotation(kubernetes_backend, scope, HISTORY_ANNOTATION, json.dumps(later))
    assert not store.set_history("n0", {"leader": "n0", "lsn": "late"}), "a later term of this Lease wrote it"
    assert store.view().history == {"leader": "n9"}
    recreated = {**later, "lease": "another-uid"}  # the leader Lease was deleted and made again: terms restart
    _set_state_annotation(kubernetes_backend, scope, HISTORY_ANNOTATION, json.dumps(recreated))
    assert store.set_history("n0", {"leader": "n0"})
    assert store.view().history == {"leader": "n0"}
    _set_state_annotation(kubernetes_backend, scope, HISTORY_ANNOTATION, "{not json")
    with pytest.raises(DCSError):
        store.view()
    assert store.set_history("n0", {"leader": "n0"}), "the holder can replace a garbage record"
    assert store.view().history == {"leader": "n0"}


def test_unexpiring_or_expired_switchover_is_removed(kubernetes_backend: Backend, scope: str) -> None:
    store = kubernetes_backend.open(scope)
    assert store.initialize("x")  # creates the state Lease
    _set_state_annotation(kubernetes_backend, scope, SWITCHOVER_ANNOTATION, json.dumps({"to": "n1"}))
    assert store.view().switchover is None, "a request without a ttl (older agents) is never acted on"
    assert SWITCHOVER_ANNOTATION not in _state_annotations(kubernetes_backend, scope)
    _set_state_annotation(kubernetes_backend, scope, SWITCHOVER_ANNOTATION, "{not json")
    assert store.view().switchover is None, "nor is garbage; and it must not break view()"
    store.set_switchover({"to": "n2"}, ttl=1.0)
    while store.view().switchover is not None:
        time.sleep(0.05)
    assert SWITCHOVER_ANNOTATION not in _state_annotations(kubernetes_backend, scope), "the observer removed it"
    fresh = kubernetes_backend.open(scope)
    assert fresh.view().switchover is None, "so a new observer cannot restart its clock"
    fresh.close()
    store.close()
