"""The Patroni-compatible probes as a table: every probe against every kind of node, the `lag`,
`replication_state`, `mode` and `tag_*` filters, and queries that are refused (pgkeel.api.probes)."""

from __future__ import annotations

from typing import Any

import pytest

from pgkeel.api.openapi import OPENAPI, documented_statuses
from pgkeel.api.probes import ROUTES, Probe, QueryError, answer, parse_lag
from pgkeel.ha.status import NodeStatus, PostgresStatus

MB = 1 << 20
TIP = 200 * MB  # the leader's last published position


def primary(**kw: Any) -> NodeStatus:
    base: dict[str, Any] = dict(
        name="pg-0", role="primary", state="running", leader="pg-0", is_leader=True, dcs_ok=True, candidate=True,
        postgres=PostgresStatus(running=True, in_recovery=False, timeline=2, lsn=TIP),
    )
    base.update(kw)
    return NodeStatus(**base)


def replica(behind: int = 0, received_behind: int = 0, streaming: bool = True, **kw: Any) -> NodeStatus:
    """A replica of pg-0 whose replay is `behind` bytes and whose walreceiver is `received_behind` bytes behind."""
    pg: dict[str, Any] = dict(
        running=True, in_recovery=True, timeline=2, streaming=streaming,
        receive_lsn=TIP - received_behind, replay_lsn=TIP - behind, replay_paused=False,
    )
    pg.update(kw.pop("pg", {}))
    base: dict[str, Any] = dict(
        name="pg-1", role="replica", state="streaming" if streaming else "recovering", leader="pg-0",
        is_leader=False, dcs_ok=True, candidate=True, lag_bytes=behind, replay_lag_bytes=behind,
        receive_lag_bytes=received_behind, postgres=PostgresStatus(**pg),
    )
    base.update(kw)
    return NodeStatus(**base)


NODES: dict[str, NodeStatus] = {
    "primary": primary(),
    "sync replica": replica(synchronous=True),
    "async replica": replica(),
    "replica not streaming": replica(streaming=False),
    "refused replica": replica(streaming=False, refused="foreign data"),
    "replica that must rewind": replica(streaming=False, candidate=False),
    "lease holder still promoting": replica(streaming=False, is_leader=True, leader="pg-1"),
    "old primary after losing the lease": primary(leader="pg-1", is_leader=False),
    "starting": NodeStatus(name="pg-1", dcs_ok=True, leader="pg-0", postgres=PostgresStatus(running=True)),
    "stopped": NodeStatus(name="pg-1", role="stopped", state="stopped", dcs_ok=True, leader="pg-0"),
    "replica, store down": replica(dcs_ok=False, leader=None, synchronous=False),
    "primary, store down": primary(dcs_ok=False, leader=None, is_leader=False),
}

COLUMNS = ("/primary", "/leader", "/standby-leader", "/replica", "/read-only", "/sync", "/async",
           "/read-only-sync", "/health", "/readiness")
# 1: 200, 0: 503, in the order of COLUMNS (Patroni's do_GET for what pgkeel has).
TABLE = {
    "primary":                            "1 1 0 0 1 0 0 1 1 1",
    "sync replica":                       "0 0 0 1 1 1 0 1 1 1",
    "async replica":                      "0 0 0 1 1 0 1 0 1 1",
    "replica not streaming":              "0 0 0 1 1 0 1 0 1 0",
    "refused replica":                    "0 0 0 0 0 0 0 0 1 0",
    "replica that must rewind":           "0 0 0 0 0 0 0 0 1 0",
    "lease holder still promoting":       "0 1 0 0 0 0 0 0 1 0",
    "old primary after losing the lease": "0 0 0 0 0 0 0 0 1 0",
    "starting":                           "0 0 0 0 0 0 0 0 0 0",
    "stopped":                            "0 0 0 0 0 0 0 0 0 0",
    "replica, store down":                "0 0 0 1 1 0 0 0 1 1",
    "primary, store down":                "0 0 0 0 0 0 0 0 1 0",
}


def code(path: str, node: NodeStatus, loop_alive: bool = True) -> int:
    route, _, query = path.partition("?")
    result = answer(route, query, node, loop_alive)
    assert result is not None, path
    return int(result.status)


def test_the_table_covers_every_node_kind() -> None:
    assert set(TABLE) == set(NODES)


@pytest.mark.parametrize("kind", list(TABLE))
@pytest.mark.parametrize("column", range(len(COLUMNS)))
def test_every_probe_answers_patronis_code_for_every_kind_of_node(kind: str, column: int) -> None:
    expected = 200 if TABLE[kind].split()[column] == "1" else 503
    assert code(COLUMNS[column], NODES[kind]) == expected


@pytest.mark.parametrize("alias", [p for p in ROUTES if p not in COLUMNS and p != "/liveness"])
def test_aliases_answer_like_the_probe_they_name(alias: str) -> None:
    canonical = {Probe.PRIMARY: "/primary", Probe.STANDBY_LEADER: "/standby-leader", Probe.SYNC: "/sync",
                 Probe.ASYNC: "/async", Probe.READ_ONLY_SYNC: "/read-only-sync"}[ROUTES[alias]]
    for node in NODES.values():
        assert code(alias, node) == code(canonical, node)


def test_liveness_follows_the_agent_loop_not_postgres_and_holds_in_maintenance_mode() -> None:
    stopped = NODES["stopped"]
    assert code("/liveness", stopped, loop_alive=True) == 200
    assert code("/liveness", NODES["primary"], loop_alive=False) == 503
    assert code("/liveness", primary(paused=True), loop_alive=False) == 200


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/replica?lag=16MB", 503),
        ("/replica?lag=32MB", 200),  # exactly at the limit is not lagging (Patroni: leader > replayed + lag)
        (f"/replica?lag={32 * MB}", 200),
        ("/replica?lag=1GB", 200),
        ("/replica?lag=32767kB", 503),
        ("/read-only?lag=1MB", 503),
        ("/async?lag=1MB", 503),
        ("/sync?lag=1GB", 503),  # not in the synchronous set, whatever the lag
        ("/readiness?lag=1MB", 503),
        ("/readiness?lag=1MB&mode=write", 200),  # received everything; replays behind
        ("/readiness?lag=1MB&mode=apply", 503),
        ("/readiness", 200),  # no default limit: what the Kubernetes probe relies on
    ],
)
def test_lag_is_the_replay_lag_behind_the_leaders_last_known_position(path: str, expected: int) -> None:
    assert code(path, replica(behind=32 * MB)) == expected


def test_lag_counts_what_the_replica_received_when_the_leaders_position_is_not_known() -> None:
    node = replica(behind=5 * MB, lag_bytes=None, replay_lag_bytes=None, receive_lag_bytes=None)
    assert code("/replica?lag=4MB", node) == 503
    assert code("/replica?lag=5MB", node) == 200


def test_a_lag_that_cannot_be_told_fails_a_lag_check_but_not_the_plain_probe() -> None:
    node = replica(lag_bytes=None, replay_lag_bytes=None, receive_lag_bytes=None, pg={"receive_lsn": None})
    assert code("/replica", node) == 200
    assert code("/replica?lag=1GB", node) == 503


def test_lag_never_applies_to_the_primary() -> None:
    assert code("/read-only?lag=0", primary()) == 200
    assert code("/read-only-sync?lag=0", primary()) == 200


def test_replication_state_streaming_selects_streaming_replicas() -> None:
    assert code("/replica?replication_state=streaming", replica()) == 200
    assert code("/replica?replication_state=streaming", replica(streaming=False)) == 503
    assert code("/read-only?replication_state=in%20archive%20recovery", replica()) == 503


def test_tag_filters_fail_because_members_carry_no_tags_except_where_patroni_ignores_them() -> None:
    assert code("/replica?tag_nofailover=false", replica()) == 503
    assert code("/health?tag_x=y", replica()) == 503
    assert code("/primary?tag_x=y", primary()) == 200
    assert code("/leader?tag_x=y", primary()) == 200


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/replica?lag=16mb", "lag"),
        ("/replica?lag=", "lag"),
        ("/replica?lag=-1", "lag"),
        ("/replica?lag=1.5GB", "lag"),
        ("/replica?lag=16%20MB", "lag"),
        ("/replica?lga=16MB", "'lga'"),
        ("/replica?lag=1MB&lag=2MB", "lag is given twice"),
        ("/replica?replication_state=", "replication_state"),
        ("/readiness?mode=fast", "mode"),
        ("/readiness?replication_state=streaming", "'replication_state'"),
        ("/primary?lag=1MB", "'lag'"),
        ("/liveness?lag=1MB", "takes none"),
        ("/replica?tag_=x", "'tag_'"),
    ],
)
def test_a_query_that_cannot_be_honoured_is_400_naming_the_key(path: str, named: str) -> None:
    route, _, query = path.partition("?")
    result = answer(route, query, replica(), True)
    assert result is not None and int(result.status) == 400
    assert named in result.body["error"] and result.body["reason"] == "bad-query"


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("7B", 7), ("1048576", MB), ("1024kB", MB), ("16MB", 16 * MB), ("1GB", 1 << 30), ("2TB", 2 << 40)],
)
def test_lag_takes_bytes_or_patronis_units(text: str, size: int) -> None:
    assert parse_lag(text) == size


@pytest.mark.parametrize("text", ["16mb", "1 GB", "1Gi", "0x10", "+5", "1e3", "MB", ""])
def test_lag_refuses_anything_else(text: str) -> None:
    with pytest.raises(QueryError, match="lag"):
        parse_lag(text)


@pytest.mark.parametrize("path", ["/status", "/metrics", "/primaryx", "/replica/", "/PRIMARY", "/history"])
def test_other_paths_are_not_probes(path: str) -> None:
    assert answer(path, "", primary(), True) is None


def test_bodies_are_a_patroni_shaped_subset_of_status() -> None:
    p = answer("/primary", "", primary(), True)
    assert p is not None and p.body["ok"] is True
    assert p.body["xlog"] == {"location": TIP} and p.body["timeline"] == 2 and p.body["role"] == "primary"
    assert "lag_bytes" not in p.body and p.body["cluster_unlocked"] is False
    r = answer("/primary", "", replica(behind=MB, synchronous=True), True)
    assert r is not None and r.body["ok"] is False
    assert r.body["xlog"] == {"received_location": TIP, "replayed_location": TIP - MB, "paused": False}
    assert (r.body["lag_bytes"], r.body["replication_state"], r.body["sync_standby"]) == (MB, "streaming", True)


def test_the_openapi_description_lists_every_probe_with_get_head_options_and_400() -> None:
    for path in ROUTES:
        item = OPENAPI["paths"][path]
        assert set(item) == {"get", "head", "options"}
        for method in ("GET", "HEAD", "OPTIONS"):
            assert {200, 503, 400} <= documented_statuses(method, path)
    assert documented_statuses("OPTIONS", "/switchover") == documented_statuses("GET", "/switchover")
