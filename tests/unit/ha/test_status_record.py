"""What /status says, built from an Observation, a Memory and a ServerStatus (no processes).

It must say only what was seen: receive and replay lag apart, `starting` until postgres answers,
pending_restart as postgres reports it now, and why the last start failed until one works.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from builders import NOW, SYSID, cluster, obs, primary_pg, primary_record, record, replica_pg, stopped_pg

from pgkeel.ha import actions
from pgkeel.ha.memory import START_RETRY_MAX, remember
from pgkeel.ha.model import Decision, Done, Failed, Memory, Observation, Started
from pgkeel.ha.records import SyncRecord
from pgkeel.ha.status import NodeStatus, TlsStatus, node_status
from pgkeel.instance import ServerStatus
from pgkeel.instance.logs import start_failure_reason

MB = 1 << 20


def server(**kw: object) -> ServerStatus:
    base: dict[str, object] = dict(
        in_recovery=True,
        timeline=1,
        lsn=100 * MB,
        replay_lsn=100 * MB,
        receive_lsn=100 * MB,
        receiver_status="streaming",
        receiver_host="127.0.0.1",
        receiver_port=5432,
        peers=(),
        system_identifier=SYSID,
        sync_standby_names="",
        replay_paused=False,
        replay_lag_seconds=0.0,
        version="15.8",
    )
    base.update(kw)
    return ServerStatus(**base)  # type: ignore[arg-type]  # test convenience: keyword overrides


def status_of(o: Observation, st: ServerStatus | None = None, rule: str = "follow.stream") -> NodeStatus:
    return node_status(
        o,
        Decision(rule, ()),
        o.memory,
        scope="demo",
        last_status=st,
        postgres_pid=4242,
        fence_detail="",
        asides=[],
        tls=TlsStatus(),
        loop_duration=0.01,
        agent_pid=4141,
    )


def test_paused_replica_reports_replay_lag_while_receive_lag_is_zero() -> None:
    leader = primary_record("pg-0", lsn=154 * MB)
    o = obs(pg=replica_pg(lsn=154 * MB), state=cluster(members={"pg-0": leader, "pg-1": record("pg-1")}))
    st = server(lsn=154 * MB, receive_lsn=154 * MB, replay_lsn=100 * MB, replay_paused=True, replay_lag_seconds=42.5)
    s = status_of(o, st)
    assert (s.role, s.state) == ("replica", "streaming")
    assert s.receive_lag_bytes == 0
    assert s.replay_lag_bytes == s.lag_bytes == 54 * MB
    assert s.postgres.replay_paused is True and s.postgres.replay_lag_seconds == 42.5
    assert (s.postgres.receive_lsn, s.postgres.replay_lsn) == (154 * MB, 100 * MB)
    assert (s.scope, s.mode, s.paused, s.postgres.version) == ("demo", "quorum", False, "15.8")


def test_running_but_silent_postgres_is_starting_never_primary() -> None:
    o = obs(pg=replica_pg(in_recovery=None, streaming=False))
    s = status_of(o, None, rule="follow.not-answering")
    assert (s.role, s.state) == ("starting", "starting")
    assert s.lag_bytes is None and s.replay_lag_bytes is None and s.pending_restart == []
    assert NodeStatus().role == "starting"  # before the first loop, too


def test_primary_has_no_replica_positions_and_pending_restart_is_postgres_own() -> None:
    o = obs("pg-0", pg=primary_pg())
    st = server(in_recovery=False, receive_lsn=None, replay_lsn=None, replay_paused=None, replay_lag_seconds=None,
                pending_restart=("shared_buffers",))
    s = status_of(o, st, rule="lead.serve")
    assert (s.role, s.state, s.is_leader) == ("primary", "running", True)
    assert s.receive_lag_bytes is None and s.replay_lag_bytes is None and s.postgres.replay_paused is None
    assert s.pending_restart == ["shared_buffers"]


def _failed_start(m: Memory, now: float, error: str = "FATAL:  could not access file \"nope\"") -> Memory:
    o = obs(pg=stopped_pg(), memory=m, now=now)
    start = actions.StartPostgres(standby=True, leader=None)
    return remember(o, Decision("elect.start-readonly", (start,)), [(start, Failed(error=error))])


def test_failed_starts_back_off_exponentially_capped_and_reset_when_postgres_answers() -> None:
    m, waits = Memory(), []
    for i in range(8):
        m = _failed_start(m, NOW + i)
        waits.append(m.retry_start_at - (NOW + i))
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, START_RETRY_MAX, START_RETRY_MAX, START_RETRY_MAX]
    assert m.failed_starts == 8 and m.counters.start_failures == 8 and "could not access" in (m.start_error or "")

    s = status_of(obs(pg=stopped_pg(), memory=m, now=NOW + 8), None, rule="global.start-backoff")
    assert s.start.failures == 8 and s.start.retry_in_s == START_RETRY_MAX - 1
    assert s.start.error == m.start_error == s.last_error

    start = actions.StartPostgres(standby=True, leader=None)
    still_starting = remember(obs(pg=stopped_pg(), memory=m), Decision("x", (start,)), [(start, Started(ready=False))])
    assert still_starting.failed_starts == 8  # not up yet: not a success
    answered = remember(obs(pg=replica_pg(), memory=still_starting), Decision("follow.stream", ()), [])
    assert (answered.failed_starts, answered.retry_start_at, answered.start_error) == (0, 0.0, None)
    assert answered.counters.start_failures == 8  # the counter only grows


def test_a_failed_bootstrap_shows_its_reason() -> None:
    o = obs("pg-0", pg=stopped_pg(has_data=False), state=cluster(leader=None, members={}, initialize=None))
    boot = actions.Bootstrap(placeholder="x")
    m = remember(o, Decision("bootstrap.initdb", (boot,)), [(boot, Failed(error="postgres exited during start"))])
    s = status_of(replace(o, memory=m), None, rule="bootstrap.backoff")
    assert s.start.failures == 1 and s.start.retry_in_s == 1.0
    assert s.start.error == "bootstrap failed: postgres exited during start"


def test_counters_count_failovers_switchovers_and_store_errors() -> None:
    promote = actions.Promote(sync_names="", within=1.0)
    o = obs(pg=replica_pg())
    m = remember(o, Decision("elect.promote", (promote,)), [(promote, Done())])
    m = remember(replace(o, memory=m), Decision("lead.promote", (promote,)), [(promote, Done())])  # a switchover target
    hand = actions.HandOver(target="pg-2", api_url=None)
    m = remember(replace(o, memory=m), Decision("lead.switchover", (hand,)), [(hand, Done())])
    m = remember(obs(memory=m, store_down=True), Decision("global.store-down", ()), [])
    m = remember(obs(memory=m, store_down=True), Decision("preio.lease-overdue", ()), [])  # no store read
    assert (m.counters.failovers, m.counters.switchovers, m.counters.store_errors) == (1, 1, 1)
    s = status_of(obs(memory=m), None)
    assert s.counters.model_dump() == {"failovers": 1, "switchovers": 1, "start_failures": 0, "store_errors": 1}


def test_start_failure_reason_is_the_end_of_the_log_without_passwords(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text(
        "LOG:  old line\n" * 50
        + "LOG:  statement: ALTER ROLE app PASSWORD 'hunter2'\n"
        + "FATAL:  could not connect: host=a user=repl password=s3cret sslmode=verify-full\n"
        + "FATAL:  password authentication failed for user \"repl\"\n"
        + "FATAL:  could not access file \"pg_nope\": No such file or directory\n"
        + "LOG:  database system is shut down\n"
    )
    reason = start_failure_reason(log)
    lines = reason.splitlines()
    assert len(lines) == 5 and lines[-2].startswith('FATAL:  could not access file "pg_nope"')
    assert "hunter2" not in reason and "s3cret" not in reason
    assert "password authentication failed" in reason


def test_start_failure_reason_holds_only_this_starts_lines(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text("FATAL:  an older start's complaint\n")
    since = log.stat().st_size
    with log.open("a") as fh:
        fh.write('LOG:  invalid value for parameter "work_mem": "lots"\n')
        fh.write("FATAL:  configuration file contains errors\n")
    assert start_failure_reason(log, since).splitlines() == [
        'LOG:  invalid value for parameter "work_mem": "lots"', "FATAL:  configuration file contains errors"]


def test_pgkeel_status_prints_a_cluster_header_and_lag_in_mb(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from pgkeel import cli
    from pgkeel.cli import _print_status
    from pgkeel.ha.status import cluster_summary, member_summary

    leader = primary_record("pg-0", lsn=154 * MB)
    o = obs(pg=replica_pg(lsn=154 * MB), state=cluster(members={"pg-0": leader, "pg-1": record("pg-1")}))
    replica = status_of(o, server(receive_lsn=154 * MB, replay_lsn=100 * MB, replay_paused=True))
    broken = status_of(obs("pg-2", pg=stopped_pg(), memory=_failed_start(Memory(), NOW)), None)
    statuses = {"pg-0": None, "pg-1": replica, "pg-2": broken}
    members = []
    for name, port, role, state in (("pg-0", 5432, "primary", "running"), ("pg-1", 5433, "replica", "streaming"),
                                    ("pg-2", 5434, "stopped", "stopped")):
        members.append({"name": name, "port": port, "role": role, "state": state, "timeline": 1, "sync": None,
                        **member_summary(statuses[name])})
    st = {**cluster_summary("demo", statuses, "pg-0"), "leader": "pg-0", "members": members}
    assert (st["cluster"], st["system_identifier"], st["mode"], st["paused"]) == ("demo", SYSID, "quorum", False)
    monkeypatch.setattr(cli.console, "width", 250)  # one line per row
    _print_status(st)
    out = capsys.readouterr().out
    assert f"Cluster: demo  system identifier: {SYSID}  mode: quorum  leader: pg-0  paused: no" in out
    row = next(line for line in out.splitlines() if "pg-1" in line)
    assert "127.0.0.1:5433" in row and "0.0" in row and "54.0" in row and "replay paused" in row
    row = next(line for line in out.splitlines() if "pg-2" in line)
    assert 'FATAL:  could not access file "nope"' in row


def test_a_replica_is_synchronous_only_in_the_current_leaders_sync_record() -> None:
    def synchronous(me: str, sync: SyncRecord | None, pg: object = None) -> bool:
        o = obs(me, pg=pg or replica_pg(), state=cluster(sync=sync))  # type: ignore[arg-type]
        return status_of(o, server()).synchronous

    assert synchronous("pg-1", SyncRecord("pg-0", ("pg-1",), 1)) is True
    assert synchronous("pg-2", SyncRecord("pg-0", ("pg-1",), 1)) is False
    assert synchronous("pg-1", SyncRecord("pg-2", ("pg-1",), 1)) is False  # an old leader's set
    assert synchronous("pg-1", None) is False  # async mode: no set
    assert synchronous("pg-0", SyncRecord("pg-0", ("pg-0",), 1), pg=primary_pg()) is False  # a primary never is
