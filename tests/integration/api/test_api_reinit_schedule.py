"""POST /reinit, a scheduled POST /switchover (`at`) and POST /switchover/cancel: the real agent's API in front
of a real SQLite store (its loop not running, so nothing is carried out; only what is accepted or refused).

A reinit goes to the member's own agent and is refused for the leader and without a running leader; a
scheduled request is stored with its time for longer than an immediate one, and cancel removes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pgkeel.api.openapi import OPENAPI, documented_statuses
from pgkeel.api.server import ApiServer
from pgkeel.dcs.sqlite import SQLiteDCS
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.fencing import NodeFence
from pgkeel.ha.loop import Agent
from pgkeel.ha.records import ClusterState, FenceKind, MemberRecord, Membership, MemberState, Role

TOKEN = "reinit-t0ken-0123456789abcdef0123456789"
MEMBERS = ["n-0", "n-1", "n-2"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[SQLiteDCS, httpx.Client]]:
    """Member n-1's agent and API; n-0 leads, n-1 and n-2 stream (records only)."""
    config = AgentConfig(
        name="n-1", scope="sched", members=MEMBERS, dcs_url=f"sqlite://{tmp_path}/dcs.db",
        advertise_host="127.0.0.1", bindir=Path("/usr/lib/postgresql/15/bin"), datadir=tmp_path / "data",
        config_file=tmp_path / "postgresql.conf", socket_dir=tmp_path, log_file=tmp_path / "pg.log",
        passfile=tmp_path / "pgpass", superuser_password_file=tmp_path / "su",
        replication_password_file=tmp_path / "rp",
    )
    dcs = SQLiteDCS(tmp_path / "dcs.db", "sched")
    server = ApiServer(Agent(config, dcs, NodeFence(FenceKind.NONE, None, {}, "none")), "127.0.0.1", 0, TOKEN)
    server.start()
    http = httpx.Client(base_url=f"http://127.0.0.1:{server.httpd.server_address[1]}", timeout=5.0, headers=AUTH)
    assert dcs.acquire_leader("n-0", ttl=60)
    for port, (name, role, state) in enumerate([("n-0", Role.PRIMARY, MemberState.RUNNING),
                                                ("n-1", Role.REPLICA, MemberState.STREAMING),
                                                ("n-2", Role.REPLICA, MemberState.STREAMING)]):
        record = MemberRecord(name, role=role, state=state, host="127.0.0.1", port=5000 + port, lsn=100)
        dcs.set_member(name, record.to_json(), ttl=60)
    try:
        yield dcs, http
    finally:
        http.close()
        server.stop()
        dcs.close()


def test_a_scheduled_switchover_is_stored_with_its_time_and_cancel_removes_it(
    api: tuple[SQLiteDCS, httpx.Client],
) -> None:
    dcs, http = api
    at = time.time() + 3600
    response = http.post("/switchover", json={"to": "n-2", "at": at})
    assert response.status_code == 202, response.text
    assert dcs.view().switchover == {"from": "n-0", "to": "n-2", "force": False, "at": at}
    cancelled = http.post("/switchover/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"]["at"] == at
    assert dcs.view().switchover is None
    assert http.post("/switchover/cancel").json() == {"cancelled": None}


@pytest.mark.parametrize("at", [1.0, time.time() + 8 * 86400])
def test_a_time_in_the_past_or_beyond_seven_days_is_refused_and_nothing_is_stored(
    api: tuple[SQLiteDCS, httpx.Client], at: float,
) -> None:
    dcs, http = api
    response = http.post("/switchover", json={"at": at})
    assert response.status_code == 409 and response.json()["reason"] == "bad-time"
    assert 409 in documented_statuses("POST", "/switchover")
    assert dcs.view().switchover is None


def test_patronis_scheduled_at_is_still_refused_by_name(api: tuple[SQLiteDCS, httpx.Client]) -> None:
    dcs, http = api
    response = http.post("/switchover", json={"scheduled_at": "2030-01-01T00:00:00+00:00"})
    assert response.status_code == 400 and "'at'" in response.json()["error"]
    assert dcs.view().switchover is None


def test_reinit_is_accepted_by_a_replicas_own_agent_and_refused_when_it_leads_or_nobody_does(
    api: tuple[SQLiteDCS, httpx.Client],
) -> None:
    dcs, http = api
    accepted = http.post("/reinit", json={})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["accepted"]["member"] == "n-1" and accepted.json()["accepted"]["request"] == 1
    assert http.post("/reinit").json()["accepted"]["request"] == 2
    assert dcs.release_leader("n-0")
    nobody = http.post("/reinit")
    assert nobody.status_code == 409 and nobody.json()["reason"] == "reinit-refused"
    assert "nothing to clone from" in nobody.json()["error"]
    assert dcs.acquire_leader("n-1", ttl=60)
    leads = http.post("/reinit")
    assert leads.status_code == 409 and "is the leader" in leads.json()["error"]
    assert set(documented_statuses("POST", "/reinit")) >= {202, 401, 409}
    assert "ReinitRequest" in OPENAPI["components"]["schemas"]


def test_reinit_needs_the_token(api: tuple[SQLiteDCS, httpx.Client]) -> None:
    _, http = api
    assert http.post("/reinit", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_membership_is_recorded_for_every_agent_and_a_bad_one_is_refused_whole(
    api: tuple[SQLiteDCS, httpx.Client],
) -> None:
    dcs, http = api
    five = ["n-0", "n-1", "n-2", "n-3", "n-4"]
    done = http.post("/membership", json={"members": five, "syncStandbys": 2})
    assert done.status_code == 200 and done.json()["membership"] == {"members": five, "syncStandbys": 2}
    assert ClusterState.decode(dcs.view()).membership == Membership(tuple(five), 2)
    for body, said in (({"members": ["n-0", "n-1"], "syncStandbys": 1}, "even"),
                       ({"members": ["n-0", "n-0", "n-1"], "syncStandbys": 1}, "each name once"),
                       ({"members": ["n-0", "n-1", "n-2"], "syncStandbys": 3}, "at most members - 1"),
                       ({"members": five}, "syncStandbys"),
                       ({"members": five, "syncStandbys": 2, "extra": 1}, "extra")):
        refused = http.post("/membership", json=body)
        assert refused.status_code == 400 and said in refused.json()["error"], (body, refused.json())
    assert ClusterState.decode(dcs.view()).membership == Membership(tuple(five), 2)  # unchanged
    assert http.post("/membership", json={"members": five, "syncStandbys": 2},
                     headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "MembershipRequest" in OPENAPI["components"]["schemas"]
