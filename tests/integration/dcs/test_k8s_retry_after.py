"""KubeClient and 429 TooManyRequests: never sooner than Retry-After, never past the caller's deadline.

A 429 comes from priority and fairness before the request reached storage, so even a write that got
one surely did not apply and may go again; retrying faster than the header says only spends seats of
the same overloaded flow (review B3).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgkeel.dcs import DCSError
from pgkeel.dcs.k8s_client import Endpoint, KubeClient, lease_seconds

NS = "pgkeel-test"
FakeKubeApi = Any  # conftest's import


@pytest.fixture
def client(kube_api: FakeKubeApi, tmp_path: Path) -> Iterator[KubeClient]:
    token = tmp_path / "token"
    token.write_text(kube_api.token + "\n")
    kube = KubeClient(Endpoint(kube_api.url, token), NS)
    try:
        yield kube
    finally:
        kube.close()


def lease(name: str) -> dict[str, Any]:
    spec = {"holderIdentity": "n0", "leaseDurationSeconds": lease_seconds(3.0)}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}, "spec": spec}


def test_a_throttled_write_waits_retry_after_then_applies_once(kube_api: FakeKubeApi, client: KubeClient) -> None:
    kube_api.throttle(1)
    started = time.monotonic()
    created = client.create_lease(lease("l"), time.monotonic() + 3.0)
    took = time.monotonic() - started
    assert created["spec"]["holderIdentity"] == "n0"
    assert took >= 1.0, f"retried after {took:.2f}s, before the server's Retry-After: 1"
    assert kube_api.habits.throttled == 1
    assert kube_api.calls.count(("coordination.k8s.io", "leases", "create")) == 1  # two attempts, one applied


def test_a_throttled_read_fails_at_once_when_retry_after_passes_the_deadline(
    kube_api: FakeKubeApi, client: KubeClient
) -> None:
    kube_api.create_pod(NS, "p", {"a": "b"})
    kube_api.throttle(5)
    started = time.monotonic()
    with pytest.raises(DCSError, match="429"):
        client.list_pods("a=b", time.monotonic() + 0.5)
    assert time.monotonic() - started < 0.3, "waited although Retry-After could not fit the deadline"
    assert kube_api.habits.throttled == 1, "retried sooner than Retry-After"
