"""IPv6 literals in URLs and host:port strings are bracketed (RFC 3986); names and IPv4 stay as they are."""

from __future__ import annotations

import pytest

from pgkeel.ha.records import Address, url_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [("10.0.0.5", "10.0.0.5"), ("pg-0.pg.ns.svc", "pg-0.pg.ns.svc"), ("fd00::5", "[fd00::5]"),
     ("::1", "[::1]"), ("[fd00::5]", "[fd00::5]")],
)
def test_url_host_brackets_only_ipv6_literals(host: str, expected: str) -> None:
    assert url_host(host) == expected


def test_an_ipv6_address_prints_as_bracketed_host_and_port() -> None:
    assert str(Address("fd00::5", 5432)) == "[fd00::5]:5432"
    assert str(Address("10.0.0.5", 5432)) == "10.0.0.5:5432"
