"""hba with TLS on: no user rule may reopen plain TCP or send passwords themselves; `host` is allowed but warned."""

from __future__ import annotations

import pytest
from pgconf_docs import cluster

from pgkeel.pgconf import ConfigError, config_warnings, render_config, validate_cluster


def test_hostnossl_is_refused_while_tls_is_on_with_the_reason_and_the_fix() -> None:
    doc = cluster(hba=["hostnossl all app 10.0.0.0/8 scram-sha-256"])
    assert validate_cluster(doc) == [
        "spec.postgres.hba[0]: hostnossl admits connections without TLS while TLS is on for every client and "
        "replica; use hostssl, or set spec.tls.enabled: false to allow plain TCP"
    ]
    with pytest.raises(ConfigError):
        render_config(doc)  # render refuses what validate refuses


def test_hostnossl_is_allowed_when_tls_is_off_and_a_hostnossl_reject_always() -> None:
    assert validate_cluster(cluster(tls=False, hba=["hostnossl all app 10.0.0.0/8 scram-sha-256"])) == []
    doc = cluster(hba=["hostnossl all all 0.0.0.0/0 reject"])  # it only makes plain TCP stricter
    assert validate_cluster(doc) == []
    assert "hostnossl all          all              0.0.0.0/0                reject" in render_config(doc).pg_hba_conf


@pytest.mark.parametrize(("line", "tls"), [
    ("hostssl all app 10.0.0.0/8 password", True),
    ("host all app 10.0.0.0/8 password", True),
    ("host all app 10.0.0.0/8 password", False),
])
def test_password_is_refused_over_tcp_even_inside_tls(line: str, tls: bool) -> None:
    (error,) = validate_cluster(cluster(tls=tls, hba=[line]))
    assert error.startswith("spec.postgres.hba[0]: password sends the password itself to the server"), error
    assert error.endswith("use scram-sha-256")


def test_password_on_the_local_socket_stays_allowed() -> None:
    assert validate_cluster(cluster(hba=["local all app password"])) == []


def test_host_rules_are_warned_about_while_tls_is_on() -> None:
    doc = cluster(hba=["host all app 10.0.0.0/8 scram-sha-256", "hostssl all app 10.1.0.0/16 scram-sha-256",
                       "host all all 0.0.0.0/0 reject"])
    assert validate_cluster(doc) == []  # allowed: scram never sends the password
    assert config_warnings(doc) == [
        "spec.postgres.hba[0]: host also admits connections without TLS (pgkeel's own rules are hostssl); "
        "write hostssl to require TLS for it"
    ]
    assert config_warnings(cluster(tls=False, hba=["host all app 10.0.0.0/8 scram-sha-256"])) == []
