"""POST /switchover and /failover are strict: the real agent's API in front of a real SQLite store.

Unknown keys and Patroni's `scheduled_at` are refused (400) and nothing reaches the store; what
the store's view forbids now (unknown member, no leader, a target that is not a streaming
replica, the leader itself) is refused at once with the reason, and nothing is recorded either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pgkeel.api.openapi import ERROR_REASONS, OPENAPI, documented_statuses
from pgkeel.api.server import ApiServer
from pgkeel.dcs.sqlite import SQLiteDCS
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.fencing import NodeFence
from pgkeel.ha.loop import Agent
from pgkeel.ha.records import FenceKind, MemberRecord, MemberState, Role

TOKEN = "strict-t0ken-0123456789abcdef0123456789"
MEMBERS = ["n-0", "n-1", "n-2"]


@dataclass
class Node:
    dcs: SQLiteDCS
    http: httpx.Client

    def publish(self, name: str, role: Role, state: MemberState, port: int = 5432) -> None:
        record = MemberRecord(name, role=role, state=state, host="127.0.0.1", port=port, lsn=100)
        self.dcs.set_member(name, record.to_json(), ttl=60)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.http.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    def recorded(self) -> dict[str, Any] | None:
        return self.dcs.view().switchover


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A real Agent (its loop not running: no postgres needed) whose API answers from a real store."""
    config = AgentConfig(
        name="n-1", scope="strict", members=MEMBERS, dcs_url=f"sqlite://{tmp_path}/dcs.db",
        advertise_host="127.0.0.1", bindir=Path("/usr/lib/postgresql/15/bin"), datadir=tmp_path / "data",
        config_file=tmp_path / "postgresql.conf", socket_dir=tmp_path, log_file=tmp_path / "pg.log",
        passfile=tmp_path / "pgpass", superuser_password_file=tmp_path / "su",
        replication_password_file=tmp_path / "rp",
    )
    dcs = SQLiteDCS(tmp_path / "dcs.db", "strict")
    agent = Agent(config, dcs, NodeFence(FenceKind.NONE, None, {}, "none"))
    api = ApiServer(agent, "127.0.0.1", 0, TOKEN)
    api.start()
    http = httpx.Client(base_url=f"http://127.0.0.1:{api.httpd.server_address[1]}", timeout=5.0)
    try:
        yield Node(dcs, http)
    finally:
        http.close()
        api.stop()
        dcs.close()


def healthy(node: Node) -> None:
    """n-0 leads; n-1 and n-2 stream from it."""
    assert node.dcs.acquire_leader("n-0", ttl=60)
    node.publish("n-0", Role.PRIMARY, MemberState.RUNNING, 5000)
    node.publish("n-1", Role.REPLICA, MemberState.STREAMING, 5001)
    node.publish("n-2", Role.REPLICA, MemberState.STREAMING, 5002)


def refused(response: httpx.Response, path: str, status: int, reason: str) -> str:
    assert response.status_code == status, response.text
    assert status in documented_statuses("POST", path)
    body = response.json()
    assert body["reason"] == reason and reason in ERROR_REASONS
    return str(body["error"])


def test_patroni_body_with_scheduled_at_is_refused_not_run_at_once(node: Node) -> None:
    healthy(node)
    body = {"leader": "n-0", "candidate": "n-2", "scheduled_at": "2030-01-01T00:00:00+00:00"}
    error = refused(node.post("/switchover", body), "/switchover", 400, "bad-body")
    assert "scheduled_at" in error and "not supported" in error
    assert node.recorded() is None


@pytest.mark.parametrize(("path", "body", "key"), [
    ("/switchover", {"to": "n-2", "when": "now"}, "when"),
    ("/switchover", {"to": "n-2", "force": True}, "force"),  # force means nothing to a switchover: never ignored
    ("/failover", {"to": "n-2", "Force": True}, "Force"),
])
def test_unknown_keys_are_refused_naming_the_key_and_the_accepted_ones(
    node: Node, path: str, body: dict[str, Any], key: str
) -> None:
    healthy(node)
    error = refused(node.post(path, body), path, 400, "bad-body")
    assert f"unknown key {key!r}" in error
    assert "accepted keys: to, candidate, leader" in error
    assert node.recorded() is None


@pytest.mark.parametrize(("body", "words"), [
    ({"to": 5}, "to: Input should be a valid string"),
    ({"to": ""}, "to: String should have at least 1 character"),
    ({"to": "n-1", "candidate": "n-2"}, "not both"),
])
def test_wrong_types_and_two_targets_are_refused(node: Node, body: dict[str, Any], words: str) -> None:
    healthy(node)
    assert words in refused(node.post("/switchover", body), "/switchover", 400, "bad-body")
    assert node.recorded() is None


def test_failover_force_must_be_a_boolean_and_needs_a_target(node: Node) -> None:
    healthy(node)
    assert "force: Input should be a valid boolean" in refused(
        node.post("/failover", {"to": "n-2", "force": "true"}), "/failover", 400, "bad-body")
    assert "failover needs 'to'" in refused(node.post("/failover", {"force": True}), "/failover", 400, "bad-body")
    assert node.recorded() is None


def test_candidate_is_an_alias_of_to_and_leader_a_precondition(node: Node) -> None:
    healthy(node)
    response = node.post("/switchover", {"leader": "n-0", "candidate": "n-2"})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == {"from": "n-0", "to": "n-2", "force": False}
    assert node.recorded() == {"from": "n-0", "to": "n-2", "force": False}


def test_a_leader_precondition_that_does_not_hold_is_refused(node: Node) -> None:
    healthy(node)
    error = refused(node.post("/switchover", {"leader": "n-1", "to": "n-2"}), "/switchover", 409, "leader-mismatch")
    assert error.startswith("the leader is n-0, not n-1")
    assert node.recorded() is None


def test_failover_to_a_stopped_member_is_refused_at_once(node: Node) -> None:
    healthy(node)
    node.dcs.delete_member("n-2")  # its agent is down: its record is gone
    error = refused(node.post("/failover", {"to": "n-2"}), "/failover", 409, "not-eligible")
    assert error == "n-2 has no member record (its agent is not running): only a streaming replica can take over"
    node.publish("n-2", Role.REPLICA, MemberState.STOPPED)  # agent up, postgres down
    error = refused(node.post("/failover", {"to": "n-2", "force": True}), "/failover", 409, "not-eligible")
    assert error.startswith("n-2 is replica/stopped")
    assert node.recorded() is None


def test_switchover_to_a_replica_that_does_not_stream_is_refused(node: Node) -> None:
    healthy(node)
    node.publish("n-2", Role.REPLICA, MemberState.RECOVERING)
    error = refused(node.post("/switchover", {"to": "n-2"}), "/switchover", 409, "not-eligible")
    assert "n-2 is replica/recovering" in error
    assert node.recorded() is None


def test_unknown_member_and_the_leader_itself_are_refused(node: Node) -> None:
    healthy(node)
    error = refused(node.post("/switchover", {"to": "n-9"}), "/switchover", 409, "unknown-member")
    assert error == "unknown member 'n-9'; members are n-0, n-1, n-2"
    assert refused(node.post("/failover", {"to": "n-0"}), "/failover", 409, "already-leader") == (
        "n-0 is already the leader")
    assert node.recorded() is None


def test_switchover_with_no_replica_able_to_take_over_is_refused(node: Node) -> None:
    healthy(node)
    node.publish("n-1", Role.REPLICA, MemberState.RECOVERING)
    node.dcs.delete_member("n-2")
    error = refused(node.post("/switchover", {}), "/switchover", 409, "no-candidate")
    assert "n-1 is replica/recovering" in error and "n-2 has no member record" in error
    assert node.recorded() is None


def test_without_a_leader_switchover_is_503_and_only_a_forced_failover_to_a_running_member_is_recorded(
    node: Node,
) -> None:
    node.publish("n-1", Role.REPLICA, MemberState.RECOVERING)
    error = refused(node.post("/switchover", {"to": "n-1"}), "/switchover", 503, "no-leader")
    assert "failover --to NAME --force" in error
    refused(node.post("/failover", {"to": "n-1"}), "/failover", 503, "no-leader")
    assert node.recorded() is None
    response = node.post("/failover", {"candidate": "n-1", "force": True})
    assert response.status_code == 202, response.text
    assert node.recorded() == {"from": None, "to": "n-1", "force": True}


def test_the_description_lists_the_strict_request_schemas() -> None:
    schemas = OPENAPI["components"]["schemas"]
    for name, keys in (("SwitchoverRequest", {"to", "candidate", "leader", "at"}),
                       ("FailoverRequest", {"to", "candidate", "leader", "at", "force"})):
        assert schemas[name]["additionalProperties"] is False
        assert set(schemas[name]["properties"]) == keys
        assert "scheduled_at" in schemas[name]["description"]
    assert set(schemas["Error"]["properties"]["reason"]["enum"]) == set(ERROR_REASONS)


def test_restart_is_accepted_by_a_replica_and_refused_by_the_leader_unless_in_place(node: Node) -> None:
    healthy(node)
    answer = node.post("/restart", {})
    assert answer.status_code == 202 and answer.json()["accepted"]["member"] == "n-1"
    assert node.post("/restart", {}).json()["accepted"]["request"] == 2  # each request counts
    error = refused(node.post("/restart", {"now": True}), "/restart", 400, "bad-body")
    assert "now" in error and "in_place" in error
    assert node.http.post("/restart", json={}).status_code == 401  # no token
    # n-1 takes the lease: as the leader of three it restarts in place only when asked to
    assert node.dcs.release_leader("n-0") and node.dcs.acquire_leader("n-1", ttl=60)
    error = refused(node.post("/restart", {}), "/restart", 409, "leader-restart")
    assert "switch over first" in error
    assert node.post("/restart", {"in_place": True}).status_code == 202


def test_reload_answers_whether_postgres_was_running(node: Node) -> None:
    answer = node.post("/reload", {})
    assert answer.status_code == 200 and answer.json() == {"member": "n-1", "reloaded": False}  # no postgres here
    assert answer.status_code in documented_statuses("POST", "/reload")
