"""Remote control of three machines from a fourth (the host), only through the commands of docs/multi-machine.md.

The machines are network namespaces on 198.18.5.0/24 (their own lab lock: a lab on 198.18.0.0/24 may
run meanwhile), each with one etcd member (TLS, auth on) and one `pgkeel node run`. From outside:
`status --api` shows one primary and two streaming replicas; a wrong token is one line and changes
nothing; `switchover --api --to X` moves the primary; `history --api` records it; with one member's
agent dead, `status --store` still reads the cluster, a dead or unreachable API is one line naming
what was tried, and `--api DEAD,LIVE` goes on to the next member.
Needs root (network namespaces), /usr/bin/etcd and PostgreSQL 15.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from machines import MEMBERS, Machines, pgkeel, running_machines

from pgkeel.lab.procs import signal_group

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("ip") is None, reason="needs etcd and iproute2"),
]
SUBNET = "198.18.5"  # not the lab's 198.18.0.0/24


@pytest.fixture(scope="module")
def cluster() -> Iterator[Machines]:
    with running_machines(SUBNET) as machines:
        yield machines


def api(machines: Machines, *members: str) -> str:
    return ",".join(f"https://{machines.address(m)}:8008" for m in members)


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    """The error a person sees: exactly one line, no traceback."""
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def status_json(*args: str) -> dict[str, Any]:
    run = pgkeel("status", *args, "--json")
    assert run.returncode == 0, run.stderr
    body: dict[str, Any] = json.loads(run.stdout)
    return body


def roles(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {m["name"]: (m["role"], m["state"]) for m in status["members"]}


def test_status_from_outside_shows_one_primary_and_two_streaming_replicas(cluster: Machines) -> None:
    st = status_json("--api", api(cluster, "db1"), "--secrets", str(cluster.bundle("db1")))
    seen = roles(st)
    assert sorted(seen.values()) == [("primary", "running"), ("replica", "streaming"), ("replica", "streaming")], st
    primary = next(n for n, (role, _) in seen.items() if role == "primary")
    assert st["leader"] == primary and st["cluster"] == "shop" and st["source"] == f"api {api(cluster, 'db1')}"
    assert all(m["timeline"] and m["host"] == cluster.address(m["name"]) for m in st["members"])
    table = pgkeel("status", "--api", api(cluster, "db2"), "--secrets", str(cluster.secrets))
    assert table.returncode == 0 and f"{primary} *" in table.stdout and table.stdout.count("streaming") == 2


def test_a_wrong_token_is_one_line_and_changes_nothing(cluster: Machines) -> None:
    wrong = cluster.root / "wrong-token"
    wrong.write_text("not-the-token\n")
    before = status_json("--api", api(cluster, "db1"), "--ca", str(cluster.ca))["leader"]
    target = next(m for m in MEMBERS if m != before)
    run = pgkeel("switchover", "--api", api(cluster, "db1"), "--ca", str(cluster.ca), "--token-file", str(wrong),
                 "--to", target)
    assert one_line(run) == (f"error: https://{cluster.address('db1')}:8008 refused the API token (401): "
                             "--token-file must hold the cluster's token, the api-token file of any member's bundle "
                             "from `pgkeel secrets init`")
    assert "not-the-token" not in run.stderr + run.stdout
    assert status_json("--api", api(cluster, "db1"), "--ca", str(cluster.ca))["leader"] == before


def test_switchover_through_the_api_moves_the_primary_and_history_records_it(cluster: Machines) -> None:
    before = status_json("--api", api(cluster, "db3"), "--secrets", str(cluster.secrets))["leader"]
    target = next(m for m in MEMBERS if m != before)
    run = pgkeel("switchover", "--api", api(cluster, "db3", "db1"), "--secrets", str(cluster.bundle("db3")),
                 "--to", target, "--timeout", "60", timeout=90)
    assert run.returncode == 0, run.stderr
    assert f"leader is now {target}" in run.stdout
    assert cluster.wait_healthy(MEMBERS, timeout=120) == target
    history = pgkeel("history", "--api", api(cluster, "db2"), "--ca", str(cluster.ca), "--json")
    assert history.returncode == 0, history.stderr
    last = json.loads(history.stdout)[-1]
    assert (last["kind"], last["leader"], last["previous"]) == ("switchover", target, before), last
    table = pgkeel("history", "--api", api(cluster, "db2"), "--ca", str(cluster.ca))
    assert table.returncode == 0 and "switchover" in table.stdout and target in table.stdout


def test_with_one_agent_dead_the_store_still_reads_and_a_dead_api_is_one_line(cluster: Machines) -> None:
    leader = status_json("--api", api(cluster, *MEMBERS), "--ca", str(cluster.ca))["leader"]
    dead = next(m for m in MEMBERS if m != leader)
    signal_group(cluster.agents[dead].pid, signal.SIGKILL)  # the agent and its API; postgres may live on
    cluster.agents[dead].wait(timeout=10)

    store = "etcds://" + ",".join(f"{cluster.address(m)}:2379" for m in MEMBERS) + "/shop"
    st = status_json("--store", store, "--store-ca", str(cluster.root / "etcd-ca.crt"), "--store-user", "pgkeel",
                     "--store-password-file", str(cluster.root / "etcd-password"))
    assert st["source"].startswith("store etcds://") and st["leader"] == leader
    assert roles(st)[leader] == ("primary", "running")
    alive = next(m for m in MEMBERS if m not in (leader, dead))
    assert roles(st)[alive] == ("replica", "streaming")

    run = pgkeel("status", "--api", api(cluster, dead), "--ca", str(cluster.ca))
    assert one_line(run).startswith(f"error: no member API answered /cluster: https://{cluster.address(dead)}:8008 "
                                    "(connection refused)")
    unreachable = pgkeel("history", "--api", f"https://{SUBNET}.99:8008", "--ca", str(cluster.ca))
    said = one_line(unreachable)
    assert f"https://{SUBNET}.99:8008 (" in said and "check that the agents run" in said.lower(), said

    st = status_json("--api", api(cluster, dead, alive), "--ca", str(cluster.ca))  # the next member answers
    assert st["source"] == f"api {api(cluster, alive)}" and st["leader"] == leader
    st = status_json("-f", str(cluster.document), "--secrets", str(cluster.secrets))  # the document's APIs
    assert st["leader"] == leader and roles(st)[alive] == ("replica", "streaming")
