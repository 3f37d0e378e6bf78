"""A restart request (POST /restart) through decide and remember: a replica restarts once, a one-node leader
restarts in place keeping its lease, and the leader of several members is refused unless asked in place."""

from __future__ import annotations

from dataclasses import replace

from builders import NAMES, cluster, decide, kinds, obs, primary_pg, stopped_pg

from pgkeel.ha.memory import remember
from pgkeel.ha.model import Done, RestartRequest, Started
from pgkeel.ha.plan_restart import restart_refusal


def test_replica_restart_is_done_once_a_start_succeeded_and_a_newer_request_restarts_again() -> None:
    o = replace(obs(), restart_request=RestartRequest(number=1))
    d = decide(o)
    assert d.rule == "follow.restart-requested"
    results = [(a, Started() if a.kind == "StartPostgres" else Done()) for a in d.actions]
    memory = remember(o, d, results)
    assert memory.restart_done == 1
    assert decide(replace(obs(memory=memory), restart_request=RestartRequest(number=1))).rule == "follow.stream"
    again = decide(replace(obs(memory=memory), restart_request=RestartRequest(number=2)))
    assert again.rule == "follow.restart-requested"


def test_a_failed_start_leaves_the_request_pending_and_the_replica_is_started_by_follow_start() -> None:
    o = replace(obs(), restart_request=RestartRequest(number=1))
    d = decide(o)
    results = [(a, Done()) for a in d.actions if a.kind == "StopPostgres"]  # the start did not come back ok
    memory = remember(o, d, results)
    assert memory.restart_done == 0
    down = replace(obs(pg=stopped_pg(), memory=memory), restart_request=RestartRequest(number=1))
    assert decide(down).rule == "follow.start"  # any start after the request carries it out


def test_one_node_leader_stops_keeping_its_lease_then_restarts_in_place() -> None:
    state = cluster(n=1, leader="pg-0")
    o = replace(obs("pg-0", pg=primary_pg(), state=state, n=1), restart_request=RestartRequest(number=1))
    d = decide(o)
    assert d.rule == "lead.restart-requested" and kinds(d)[0] == "RenewLeader"
    memory = remember(o, d, [(a, Done()) for a in d.actions])
    after = replace(obs("pg-0", pg=stopped_pg(was_primary=True), state=state, n=1, memory=memory),
                    restart_request=RestartRequest(number=1))
    d2 = decide(after)
    assert d2.rule == "lead.restart-in-place" and kinds(d2) == ["RenewLeader", "StartPostgres"]
    assert remember(after, d2, [(a, Started()) for a in d2.actions]).restart_done == 1


def test_the_leader_of_several_members_refuses_a_restart_unless_in_place() -> None:
    members = list(NAMES[:3])
    state = cluster()
    refusal = restart_refusal(state, "pg-0", members, in_place=False)
    assert refusal is not None and "switch over first" in refusal
    assert restart_refusal(state, "pg-0", members, in_place=True) is None
    assert restart_refusal(state, "pg-1", members, in_place=False) is None  # a replica
    assert restart_refusal(cluster(n=1), "pg-0", ["pg-0"], in_place=False) is None  # one node

