"""The README's `kubectl port-forward pod/… 8008` recipe: port-forward connects to the pod's loopback,
so an agent whose API is bound to the pod IP serves 127.0.0.1 too, with the same token."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pgkeel.api.server import ApiServer
from pgkeel.ha.status import NodeStatus, PostgresStatus

TOKEN = "port-forward-token-0123456789abcdef"


class Node:
    """The least an ApiServer fronts: a primary's status and a switchover request it records."""

    def __init__(self) -> None:
        self.requests: list[str | None] = []

    def status(self) -> NodeStatus:
        return NodeStatus(name="pg-0", role="primary", leader="pg-0", is_leader=True, dcs_ok=True,
                          postgres=PostgresStatus(running=True, in_recovery=False, timeline=1, lsn=1),
                          rule="lead.serve", loop_duration_s=0.01)

    def loop_alive(self) -> bool:
        return True

    def wake(self) -> None:
        pass

    def request_switchover(self, to: str | None, force: bool = False, **_: Any) -> dict[str, Any]:
        self.requests.append(to)
        return {"from": "pg-0", "to": to, "force": force}


def pod_ip() -> str:
    """This machine's own non-loopback address (what a pod IP is to the agent in the pod)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))  # UDP: picks the source address, sends nothing
        except OSError:
            pytest.skip("no non-loopback IPv4 address on this machine")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no non-loopback IPv4 address on this machine")
    return address


@pytest.fixture
def served() -> Iterator[tuple[ApiServer, Node, str]]:
    node, ip = Node(), pod_ip()
    api = ApiServer(node, ip, 0, TOKEN)
    api.start()
    try:
        yield api, node, ip
    finally:
        api.stop()


def test_api_on_a_pod_ip_answers_on_loopback_with_the_same_token(served: tuple[ApiServer, Node, str]) -> None:
    api, node, ip = served
    port = api.addresses[0][1]
    assert api.addresses == [(ip, port), ("127.0.0.1", port)]
    for host in (ip, "127.0.0.1"):
        assert httpx.get(f"http://{host}:{port}/liveness", timeout=5).json()["ok"] is True
    url = f"http://127.0.0.1:{port}/switchover"
    refused = httpx.post(url, json={"to": "pg-1"}, timeout=5)
    assert refused.status_code == 401 and node.requests == []  # loopback is no way around the token
    accepted = httpx.post(url, json={"to": "pg-1"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert accepted.status_code == 202, accepted.text
    assert node.requests == ["pg-1"]


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_loopback_and_wildcard_binds_get_no_second_listener(host: str) -> None:
    api = ApiServer(Node(), host, 0, TOKEN)
    try:
        assert [a[0] for a in api.addresses] == [host]
    finally:
        api.httpd.server_close()


def test_a_taken_loopback_port_fails_the_start_and_frees_the_pod_ip() -> None:
    ip = pod_ip()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(OSError):
            ApiServer(Node(), ip, port, TOKEN)
    with socket.socket() as again:  # the pod-IP socket was closed, not leaked
        again.bind((ip, port))
