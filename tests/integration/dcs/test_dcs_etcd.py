"""etcd-only behaviour: endpoint failover, dead or silent endpoints, whole-second leases."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pgkeel.dcs import DCSError, open_dcs
from pgkeel.dcs.etcd import EtcdDCS
from pgkeel.dcs.etcd_client import b64

EtcdServer = Any  # the conftest fixture's type; test modules do not import conftest


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP port that accepts connections (kernel backlog) but never answers: a hung server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_wrong_port_raises_fast(dead_endpoint: str) -> None:
    store = EtcdDCS([dead_endpoint], "c", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DCSError):
        store.view()
    with pytest.raises(DCSError):
        store.acquire_leader("n0", 5.0)
    assert time.monotonic() - started < 1.5
    store.close()


def test_silent_endpoint_times_out(silent_endpoint: str) -> None:
    store = EtcdDCS([silent_endpoint], "c", timeout=0.5)
    for call in (store.view, lambda: store.renew_leader("n0", 5.0)):
        started = time.monotonic()
        with pytest.raises(DCSError):
            call()
        elapsed = time.monotonic() - started
        assert 0.3 < elapsed < 1.0, elapsed
    store.close()


@pytest.mark.parametrize("order", ["dead-first", "live-first"])
def test_endpoints_are_tried_in_turn(etcd_server: EtcdServer, dead_endpoint: str, scope: str, order: str) -> None:
    dead = dead_endpoint
    hosts = [dead, etcd_server.endpoint] if order == "dead-first" else [etcd_server.endpoint, dead]
    store = open_dcs("etcd://" + ",".join(hosts), scope, timeout=1.0)
    assert store.acquire_leader("n0", 5.0)
    assert store.renew_leader("n0", 5.0)
    assert store.view().leader.holder == "n0"  # type: ignore[union-attr]
    store.close()


def test_ttl_is_rounded_up_to_whole_seconds(etcd_server: EtcdServer, scope: str) -> None:
    store = EtcdDCS([etcd_server.endpoint], scope)
    assert store.acquire_leader("n0", 0.3)
    assert store.view().leader.ttl == 1.0  # type: ignore[union-attr]
    assert store.release_leader("n0")
    assert store.acquire_leader("n0", 1.5)
    assert store.view().leader.ttl == 2.0  # type: ignore[union-attr]
    store.close()


def test_renew_with_new_ttl_keeps_term(etcd_server: EtcdServer, scope: str) -> None:
    store = EtcdDCS([etcd_server.endpoint], scope)
    assert store.acquire_leader("n0", 1.0)
    before = store.view().leader
    assert store.renew_leader("n0", 3.0)
    after = store.view().leader
    assert before is not None and after is not None
    assert after.term == before.term and after.ttl == 3.0
    time.sleep(1.6)  # the first lease would be gone by now
    assert store.view().leader is not None
    assert store.renew_leader("n0", 3.0)
    store.close()


def test_garbage_leader_key_is_a_dcserror(etcd_server: EtcdServer, scope: str) -> None:
    key = f"/pgkeel/{scope}/leader"
    httpx.post(f"http://{etcd_server.endpoint}/v3/kv/put", json={"key": b64(key), "value": b64("{not json")})
    store = EtcdDCS([etcd_server.endpoint], scope)
    with pytest.raises(DCSError):
        store.view()
    store.close()


def _key(etcd_server: EtcdServer, key: str) -> dict[str, Any]:
    answer = httpx.post(f"http://{etcd_server.endpoint}/v3/kv/range", json={"key": b64(key)}).json()
    kvs = answer.get("kvs") or []
    assert len(kvs) == 1, answer
    return dict(kvs[0])


def test_history_has_no_lease_and_switchover_has_one(etcd_server: EtcdServer, scope: str) -> None:
    store = EtcdDCS([etcd_server.endpoint], scope)
    assert store.acquire_leader("n0", 5.0)
    assert store.set_history("n0", {"leader": "n0"})
    store.set_switchover({"to": "n1"}, ttl=1.5)
    assert int(_key(etcd_server, f"/pgkeel/{scope}/history").get("lease", 0)) == 0, "history must not expire"
    lease = _key(etcd_server, f"/pgkeel/{scope}/switchover")["lease"]
    ttl = httpx.post(f"http://{etcd_server.endpoint}/v3/lease/timetolive", json={"ID": lease}).json()
    assert int(ttl["grantedTTL"]) == 2, "the request's ttl, rounded up to whole seconds"
    store.close()
