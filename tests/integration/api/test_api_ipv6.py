"""IPv6 single-stack (issue 16 item 9): the agent API listens on an IPv6 address, advertises a bracketed
URL, and a peer reaches it there (the probe of pgkeel.ha.peers uses that URL as is)."""

from __future__ import annotations

import httpx
from api_fakes import TOKEN, FakeAgent

from pgkeel.api.server import ApiServer
from pgkeel.ha.config import AgentConfig

V6 = "::1"


def test_the_api_listens_on_an_ipv6_address_and_advertises_a_bracketed_url() -> None:
    api = ApiServer(FakeAgent(), V6, 0, TOKEN)
    port = int(api.httpd.server_address[1])
    api.start()
    try:
        config = AgentConfig.model_construct(api_host=V6, api_port=port, api_cert_file=None)
        assert config.api_url == f"http://[{V6}]:{port}"
        answer = httpx.get(f"{config.api_url}/status", timeout=5.0)
        assert answer.status_code == 200
        assert answer.json()["name"] == "n-0"
    finally:
        api.stop()
