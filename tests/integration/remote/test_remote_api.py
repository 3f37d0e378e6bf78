"""`pgkeel status | switchover | history --api` against a real agent's API in front of a real SQLite store.

The agent's loop does not run (no postgres needed): the store holds member records written as the
loops write them, so GET /cluster, the next-member fallback, the token and a refusal are exercised
through the same commands a person types. The three-machine run is tests/e2e/test_remote_machines.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pgkeel.api.server import ApiServer
from pgkeel.cli import app
from pgkeel.dcs.sqlite import SQLiteDCS
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.fencing import NodeFence
from pgkeel.ha.loop import Agent
from pgkeel.ha.records import EventKind, FenceKind, HistoryEvent, MemberRecord, MemberState, Role

TOKEN = "remote-t0ken-0123456789abcdef0123456789"
MEMBERS = ["n-0", "n-1", "n-2"]
runner = CliRunner()


def dead_url() -> str:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class Cluster:
    dcs: SQLiteDCS
    url: str  # n-1's API, the only agent whose API runs
    token_file: Path
    dead: str


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    config = AgentConfig(
        name="n-1", scope="remote", members=MEMBERS, dcs_url=f"sqlite://{tmp_path}/dcs.db",
        advertise_host="127.0.0.1", bindir=Path("/usr/lib/postgresql/15/bin"), datadir=tmp_path / "data",
        config_file=tmp_path / "postgresql.conf", socket_dir=tmp_path, log_file=tmp_path / "pg.log",
        passfile=tmp_path / "pgpass", superuser_password_file=tmp_path / "su",
        replication_password_file=tmp_path / "rp",
    )
    dcs = SQLiteDCS(tmp_path / "dcs.db", "remote")
    agent = Agent(config, dcs, NodeFence(FenceKind.NONE, None, {}, "none"))
    api = ApiServer(agent, "127.0.0.1", 0, TOKEN, store=dcs)
    api.start()
    url, dead = f"http://127.0.0.1:{api.httpd.server_address[1]}", dead_url()
    assert dcs.acquire_leader("n-0", ttl=60)
    for name, role, state, lsn, api_url in (("n-0", Role.PRIMARY, MemberState.RUNNING, 5000, dead),
                                            ("n-1", Role.REPLICA, MemberState.STREAMING, 4000, url),
                                            ("n-2", Role.REPLICA, MemberState.STREAMING, 5000, dead)):
        record = MemberRecord(name, role=role, state=state, host="127.0.0.1", port=5432, lsn=lsn, api_url=api_url,
                              timeline=1)
        dcs.set_member(name, record.to_json(), ttl=60)
    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    try:
        yield Cluster(dcs, url, token_file, dead)
    finally:
        api.stop()
        dcs.close()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_status_through_one_api_lists_every_member_of_the_store_after_a_dead_one(cluster: Cluster) -> None:
    code, out = run("status", "--api", f"{cluster.dead},{cluster.url}", "--json")
    assert code == 0, out
    status = json.loads(out)
    assert status["source"] == f"api {cluster.url}" and status["leader"] == "n-0"
    rows = {m["name"]: m for m in status["members"]}
    assert list(rows) == MEMBERS
    assert (rows["n-0"]["role"], rows["n-0"]["state"]) == ("primary", "running")  # from its record: API dead
    assert rows["n-0"]["last_error"] == f"API {cluster.dead} did not answer"
    assert rows["n-1"]["role"] == "starting"  # its own /status: this agent's loop never ran
    assert rows["n-2"]["receive_lag_bytes"] == 0
    code, table = run("status", "--api", cluster.url)
    assert code == 0 and "n-0 *" in table and "streaming" in table, table


def test_switchover_needs_the_right_token_and_records_the_request(cluster: Cluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token\n")
    code, out = run("switchover", "--api", cluster.url, "--token-file", str(wrong), "--to", "n-2", "--no-wait")
    said = " ".join(out.split())
    assert code == 1 and said == (f"error: {cluster.url} refused the API token (401): --token-file must hold the "
                                  "cluster's token, the api-token file of any member's bundle from `pgkeel "
                                  "secrets init`"), said
    assert cluster.dcs.view().switchover is None
    code, out = run("switchover", "--api", f"{cluster.dead},{cluster.url}", "--token-file", str(cluster.token_file),
                    "--to", "n-2", "--no-wait")
    assert code == 0 and "requested: n-0 → n-2" in out, out
    assert cluster.dcs.view().switchover == {"from": "n-0", "to": "n-2", "force": False}


def test_a_refusal_is_the_members_reason_in_one_line(cluster: Cluster) -> None:
    code, out = run("switchover", "--api", cluster.url, "--token-file", str(cluster.token_file), "--to", "n-0")
    said = " ".join(out.split())
    assert code == 1 and said.startswith(f"error: refused by {cluster.url}: ") and "n-0" in said, said
    assert cluster.dcs.view().switchover is None


def test_history_through_the_api_is_the_stores_events(cluster: Cluster) -> None:
    event = HistoryEvent(time=1_700_000_000.0, kind=EventKind.SWITCHOVER, leader="n-0", previous="n-2", timeline=2,
                         lsn=16 << 24, term=2)
    assert cluster.dcs.set_value("events", {"events": [event.to_json()]}, 0)
    code, out = run("history", "--api", cluster.url, "--json")
    assert code == 0 and json.loads(out) == [event.to_json()], out
    code, table = run("history", "--api", cluster.url)
    assert code == 0 and "switchover" in table and "0/10000000" in table, table


def test_pause_and_resume_through_the_api_record_maintenance_mode_in_the_store(cluster: Cluster) -> None:
    code, out = run("pause", "--api", cluster.url, "--token-file", str(cluster.token_file), "--for", "30m",
                    "--reason", "CHG-42")
    assert code == 0 and "paused" in out, out
    view = cluster.dcs.view()
    pause = view.values["config"].value["pause"]
    assert pause["reason"] == "CHG-42" and pause["until"] > 0, pause
    code, out = run("status", "--api", cluster.url, "--json")
    assert code == 0 and json.loads(out)["paused"], out
    code, out = run("resume", "--api", cluster.url, "--token-file", str(cluster.token_file))
    assert code == 0 and "resumed" in out, out
    config = cluster.dcs.view().values.get("config")
    assert config is None or not config.value.get("pause"), config
    code, out = run("resume", "--api", cluster.url, "--token-file", str(cluster.token_file))
    assert code == 0 and "not paused" in out, out
