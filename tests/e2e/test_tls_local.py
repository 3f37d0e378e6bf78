"""TLS on a real local cluster: plain TCP refused, names verified, replication encrypted."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.e2e


def test_tls_everywhere(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    dsn = cluster.dsn(True)
    assert "sslmode=verify-full" in dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
        encrypted = conn.execute(
            "SELECT r.application_name, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"
        ).fetchall()
    assert len(encrypted) == 2 and all(ssl for _, ssl in encrypted), encrypted

    leader = cluster.status()["leader"]
    plain = cluster.node_dsn(leader).replace("sslmode=verify-full", "sslmode=disable")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(plain)

    port = cluster.layout.load_state()["pg_ports"][leader]
    wrong_name = (
        f"host=db.example.invalid hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres "
        f"passfile={cluster.layout.passfile} sslmode=verify-full sslrootcert={cluster.layout.ca_file}"
    )
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(wrong_name)

    status = cluster.status()
    assert all(m["cert_not_after"] for m in status["members"])
