"""Store-outage failsafe on three machines, with real etcd, real PostgreSQL 15 and `pgkeel node run`.

The machines are network namespaces on 198.18.6.0/24 (their own lab lock: a lab on 198.18.0.0/24 and
the remote-control tests on 198.18.5.0/24 may run meanwhile), each with one etcd member (TLS, auth on).
A writer commits every 50 ms through the multi-host read-write DSN; each fault lasts its full time:

(a) 2 of 3 etcd members SIGKILLed for 30 s: the primary serves on its peers' promises, no failover;
(b) the etcd leader SIGSTOPped for 10 s: no failover;
(c) the primary cut from the store (etcd's ports 2379/2380 to and from the other machines) but not from
    its peers, 30 s: its own etcd member is then a minority of one, the others still have a quorum and
    see the lease expire, and hold off because they promised; the replicas' /status shows the promise;
(d) the primary cut from everything (store and peers), 30 s: it stops acknowledging writes at its
    fence deadline, another member leads, and after the heal the old primary rejoins as a replica.

Every fault ends with nothing lost: each acknowledged id is on the final primary. The host has no
iptables/nft, so the cuts are routes inside the namespaces: (c) policy rules (`ip rule ... dport|sport
2379|2380`) sending etcd traffic to the other machines into a blackhole table, (d) blackhole routes to
the other machines; the host's bridge address (the writer) stays reachable from every machine.
Needs root (network namespaces), /usr/bin/etcd and PostgreSQL 15.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from machines import API_PORT, MEMBERS, Machines, running_machines

from pgkeel.lab.checks import lost_acked, split_brain_windows
from pgkeel.lab.etcd import CLIENT_PORT, PEER_PORT
from pgkeel.lab.netns import ip
from pgkeel.lab.procs import spawn
from pgkeel.lab.workload import Attempt, Writer, final_ids, prepare_table
from pgkeel.node.bundle import Bundle

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("ip") is None, reason="needs etcd and iproute2"),
]
SUBNET = "198.18.6"  # not the lab's 198.18.0.0/24, nor test_remote_machines' 198.18.5.0/24
PG_PORT = 5432
CUT_TABLE = "100"  # the routing table inside a namespace that blackholes what a cut drops
CUT_PRIORITY = "100"  # after `lookup local` (0): a machine still reaches its own addresses
# Writes must continue through a store outage: no gap between two acknowledged commits as long as the
# ttl. A failover needs the lease to expire first (>= ttl), so a gap below it shows the old primary
# kept serving; one failed failsafe round closes the fence for at most about a loop. Measured: ~0.2 s.
MAX_WRITE_GAP = 3.0
FENCE_BOUND = 5.0  # (d): the fence closes 1.5 s after the last renewal; allow CPU-starved loops


@pytest.fixture(scope="module")
def cluster() -> Iterator[Machines]:
    with running_machines(SUBNET) as machines:
        yield machines


# --- what the tests observe --------------------------------------------------------------------------


def dsn(machines: Machines, *members: str, options: str = "") -> str:
    password = Bundle(machines.bundle("db1"), "db1").superuser_password_file.read_text().strip()
    hosts = ",".join(machines.address(m) for m in members)
    extra = f" options='{options}'" if options else ""
    return (f"host={hosts} port={PG_PORT} user=postgres password={password} dbname=postgres sslmode=require "
            f"connect_timeout=2 target_session_attrs={'read-write' if len(members) > 1 else 'any'}{extra}")


@dataclass
class Poll:
    t: float
    member: str
    status: dict[str, Any] | None


@dataclass
class StatusLog:
    """Every member's /status every 0.25 s, from the host, while a fault runs."""

    machines: Machines
    polls: list[Poll] = field(default_factory=list)
    _halt: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._halt.is_set():
            for member in MEMBERS:
                self.polls.append(Poll(time.monotonic(), member, self.machines.status(member)))
            self._halt.wait(0.25)

    @contextlib.contextmanager
    def running(self) -> Iterator[StatusLog]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._halt.set()
            thread.join(timeout=10)

    def between(self, start: float, end: float = math.inf) -> list[Poll]:
        return [p for p in self.polls if start <= p.t <= end and p.status is not None]

    def leaders(self, start: float, end: float = math.inf) -> set[str]:
        return {p.member for p in self.between(start, end)
                if p.status and p.status.get("role") == "primary" and p.status.get("is_leader")}


@dataclass(frozen=True)
class Window:
    """What the application writer saw during one fault (time.monotonic() seconds)."""

    start: float
    end: float
    attempts: list[Attempt]

    def acks(self, start: float, end: float) -> list[float]:
        return sorted(a.t_done for a in self.attempts if a.outcome == "ack" and start <= a.t_done <= end)

    def longest_gap(self) -> float:
        """From the last ack before the fault to the first after it, over every pair of acks in between."""
        before = self.acks(-math.inf, self.start)[-1:]
        after = self.acks(self.end, math.inf)[:1]
        series = before + self.acks(self.start, self.end) + after
        return max((b - a for a, b in itertools.pairwise(series)), default=math.inf)

    def rate_before(self, seconds: float = 5.0) -> float:
        return len(self.acks(self.start - seconds, self.start)) / seconds


@contextlib.contextmanager
def writing(machines: Machines) -> Iterator[Writer]:
    """The application: one insert every 50 ms through the read-write DSN, giving up on a statement after 5 s."""
    conninfo = dsn(machines, *MEMBERS)
    prepare_table(conninfo)
    writer = Writer("app", conninfo, 0, interval=0.05, deadline=5.0, reconnect_on_read_only=True)
    writer.start()
    try:
        writer.wait_commits(20, timeout=30)
        time.sleep(5)  # the steady rate each fault's commits are compared with (Window.rate_before)
        yield writer
    finally:
        writer.stop()
        writer.join(timeout=15)


def assert_nothing_lost(machines: Machines, writer: Writer) -> None:
    acked = [a for a in writer.log if a.outcome == "ack"]
    assert acked, "the writer acknowledged nothing"
    lost = lost_acked(writer.log, final_ids(dsn(machines, *MEMBERS)))
    assert lost == [], f"{len(lost)} of {len(acked)} acknowledged ids are not on the final primary: {lost[:20]}"


def timeline(machines: Machines, member: str) -> int | None:
    st = machines.status(member)
    return (st.get("postgres") or {}).get("timeline") if st else None


def report(name: str, **figures: float | int | str | None) -> None:
    shown = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"\n[failsafe {name}] {shown}")


# --- etcd faults ----------------------------------------------------------------------------------------


def etcd_verify(machines: Machines) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(machines.root / "etcd-ca.crt"))


def etcd_leader(machines: Machines) -> int:
    """The index of the etcd member that leads raft, as every member reports it."""
    ids: dict[str, int] = {}
    leaders: set[str] = set()
    for i in range(3):
        body = httpx.post(f"{machines.etcd.client_url(i)}/v3/maintenance/status", json={},
                          verify=etcd_verify(machines), timeout=2.0).json()
        ids[str(body["header"]["member_id"])] = i
        leaders.add(str(body["leader"]))
    assert len(leaders) == 1, f"the etcd members disagree on their leader: {leaders}"
    return ids[leaders.pop()]


def restart_etcd_member(machines: Machines, i: int) -> None:
    """Start member i again with its own command line and data directory (it rejoins its cluster)."""
    etcd = machines.etcd
    old = etcd.procs[i]
    assert old.poll() is not None, "restart only a member that is gone"
    argv = old.args
    assert isinstance(argv, list)  # EtcdCluster.start spawns an argv list
    etcd.procs[i] = spawn([str(arg) for arg in argv], etcd.base / f"{etcd.name(i)}.log")


def wait_store_back(machines: Machines, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all((st := machines.status(m)) and st.get("dcs_ok") for m in MEMBERS):
        assert time.monotonic() < deadline, "the agents did not read the store again after it came back"
        time.sleep(0.2)


# --- network cuts inside the namespaces --------------------------------------------------------------


def _store_rules(machines: Machines, i: int, verb: str) -> None:
    ns = machines.net.namespace(i)
    for port in (CLIENT_PORT, PEER_PORT):
        for direction in ("sport", "dport"):
            ip("-n", ns, "rule", verb, "ipproto", "tcp", direction, str(port), "table", CUT_TABLE,
               "priority", CUT_PRIORITY, check=verb == "add")


@contextlib.contextmanager
def cut_from_store(machines: Machines, member: str) -> Iterator[None]:
    """Drop etcd's traffic (client 2379, peer 2380, both directions) between `member` and the other
    machines, and nothing else: its local etcd member is then a minority of one, so its agent reads no
    store, while its API and postgres still reach the peers. Undone on exit, whatever happened."""
    p = MEMBERS.index(member)
    try:
        for i in range(3):
            _store_rules(machines, i, "add")
            for j in ([k for k in range(3) if k != p] if i == p else [p]):
                ip("-n", machines.net.namespace(i), "route", "add", "blackhole", f"{machines.net.address(j)}/32",
                   "table", CUT_TABLE)
        yield
    finally:
        for i in range(3):
            _store_rules(machines, i, "del")
            ip("-n", machines.net.namespace(i), "route", "flush", "table", CUT_TABLE, check=False)


@contextlib.contextmanager
def isolated(machines: Machines, member: str) -> Iterator[None]:
    """Drop all traffic between `member` and the other machines (the host's writer still reaches it)."""
    p = MEMBERS.index(member)
    pairs = [(p, j) for j in range(3) if j != p] + [(j, p) for j in range(3) if j != p]
    try:
        for i, j in pairs:
            ip("-n", machines.net.namespace(i), "route", "add", "blackhole", f"{machines.net.address(j)}/32")
        yield
    finally:
        for i, j in pairs:
            ip("-n", machines.net.namespace(i), "route", "del", "blackhole", f"{machines.net.address(j)}/32",
               check=False)


# --- the API ---------------------------------------------------------------------------------------------


def post_failsafe(machines: Machines, member: str, leader: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"https://{machines.address(member)}:{API_PORT}/failsafe", json={"leader": leader},
                      headers=headers, verify=ssl.create_default_context(cafile=str(machines.ca)), timeout=5.0)


def test_failsafe_api_needs_the_token_and_promises_only_the_leader_it_saw(cluster: Machines) -> None:
    primary = cluster.wait_healthy(MEMBERS, timeout=120)
    replica = next(m for m in MEMBERS if m != primary)
    token = Bundle(cluster.bundle(replica), replica).token_file.read_text().strip()

    assert post_failsafe(cluster, replica, primary, None).status_code == 401
    assert post_failsafe(cluster, replica, primary, "not-the-token").status_code == 401
    promised = post_failsafe(cluster, replica, primary, token)
    assert promised.status_code == 200, promised.text
    assert promised.json()["promised"]["leader"] == primary and promised.json()["promised"]["seconds"] > 0
    for target, leader, why in [(replica, "intruder", "not a member"), (primary, replica, "holds the lease"),
                                (replica, replica, "does not promise itself")]:
        refused = post_failsafe(cluster, target, leader, token)
        assert refused.status_code == 409 and why in refused.json()["error"], (target, leader, refused.text)
        assert refused.json()["reason"] == "no-promise"
    assert cluster.wait_healthy(MEMBERS, timeout=30) == primary  # a promise changes nothing while the store is up


# --- the faults ------------------------------------------------------------------------------------------


def test_two_of_three_etcd_members_killed_for_30s_writes_continue_without_failover(cluster: Machines) -> None:
    primary = cluster.wait_healthy(MEMBERS, timeout=120)
    tl = timeline(cluster, primary)
    victims = [MEMBERS.index(primary), (MEMBERS.index(primary) + 1) % 3]  # its own etcd member and one more
    log = StatusLog(cluster)
    with writing(cluster) as writer, log.running():
        start = time.monotonic()
        try:
            for i in victims:
                os.kill(cluster.etcd.procs[i].pid, signal.SIGKILL)
                cluster.etcd.procs[i].wait(timeout=10)
            time.sleep(30)
        finally:
            end = time.monotonic()
            for i in victims:
                if cluster.etcd.procs[i].poll() is not None:
                    restart_etcd_member(cluster, i)
        wait_store_back(cluster)
        back = time.monotonic()
        assert cluster.wait_healthy(MEMBERS, timeout=60) == primary
        time.sleep(5)  # the store is back: the lease is renewed (or reclaimed) while the writer goes on
        settled = time.monotonic()
        writer.wait_commits(20)
    window = Window(start, end, list(writer.log))
    returning = Window(end, settled, list(writer.log))  # from the restart of etcd until 5 s after healthy
    serving = [p.status["failsafe_serving_s"] for p in log.between(start, end)
               if p.member == primary and p.status and p.status.get("failsafe_serving_s") is not None]
    report("a: 2 of 3 etcd killed 30 s", longest_gap_s=window.longest_gap(), commits=len(window.acks(start, end)),
           rate_before_per_s=window.rate_before(), failsafe_serving_max_s=max(serving, default=None),
           store_back_to_dcs_ok_s=back - end, longest_gap_after_return_s=returning.longest_gap())
    assert window.longest_gap() < MAX_WRITE_GAP
    assert returning.longest_gap() < MAX_WRITE_GAP, "writes stalled when the store came back"
    assert len(window.acks(start, end)) >= 0.8 * window.rate_before() * (end - start)
    assert serving and max(serving) > 20, "the primary's /status never showed it serving on failsafe"
    assert log.leaders(start) == {primary} and timeline(cluster, primary) == tl
    assert_nothing_lost(cluster, writer)


def test_etcd_leader_frozen_for_10s_no_failover(cluster: Machines) -> None:
    primary = cluster.wait_healthy(MEMBERS, timeout=120)
    tl = timeline(cluster, primary)
    frozen = etcd_leader(cluster)
    proc = cluster.etcd.procs[frozen]
    log = StatusLog(cluster)
    with writing(cluster) as writer, log.running():
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            time.sleep(10)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
            end = time.monotonic()
        assert cluster.wait_healthy(MEMBERS, timeout=60) == primary
        writer.wait_commits(20)
    window = Window(start, end, list(writer.log))
    report("b: etcd leader SIGSTOP 10 s", frozen=f"etcd{frozen}", longest_gap_s=window.longest_gap(),
           commits=len(window.acks(start, end)), rate_before_per_s=window.rate_before())
    assert window.longest_gap() < MAX_WRITE_GAP
    assert log.leaders(start) == {primary} and timeline(cluster, primary) == tl
    assert_nothing_lost(cluster, writer)


def test_primary_cut_from_the_store_but_not_its_peers_keeps_serving_on_their_promises(cluster: Machines) -> None:
    primary = cluster.wait_healthy(MEMBERS, timeout=120)
    replicas = [m for m in MEMBERS if m != primary]
    tl = timeline(cluster, primary)
    log = StatusLog(cluster)
    with writing(cluster) as writer, log.running():
        start = time.monotonic()
        with cut_from_store(cluster, primary):
            time.sleep(30)
            end = time.monotonic()
        assert cluster.wait_healthy(MEMBERS, timeout=60) == primary
        writer.wait_commits(20)
    window = Window(start, end, list(writer.log))
    during = log.between(start, end)
    promised = {p.member: p.status["failsafe_promised_s"] for p in during
                if p.member in replicas and p.status and p.status.get("failsafe_promised_s")}
    # the replicas read the store throughout and saw the lease lapse: only their promises held them
    saw_no_leader = {p.member for p in during if p.member in replicas and p.status
                     and p.status.get("dcs_ok") and p.status.get("leader") is None}
    primary_blind = any(p.member == primary and p.status and not p.status.get("dcs_ok") for p in during)
    report("c: primary cut from the store 30 s", longest_gap_s=window.longest_gap(),
           commits=len(window.acks(start, end)), rate_before_per_s=window.rate_before(),
           replicas_promising=",".join(sorted(promised)), replicas_saw_no_lease=",".join(sorted(saw_no_leader)))
    assert primary_blind, "the cut did not keep the primary from its store"
    assert set(promised) == set(replicas), f"/status showed no failsafe_promised_s on {set(replicas) - set(promised)}"
    assert saw_no_leader == set(replicas), "the replicas should read the store and see the lease expire"
    assert window.longest_gap() < MAX_WRITE_GAP
    assert len(window.acks(start, end)) >= 0.8 * window.rate_before() * (end - start)
    assert log.leaders(start) == {primary} and timeline(cluster, primary) == tl
    assert_nothing_lost(cluster, writer)


def test_primary_cut_from_store_and_peers_fences_and_another_member_leads(cluster: Machines) -> None:
    primary = cluster.wait_healthy(MEMBERS, timeout=120)
    others = [m for m in MEMBERS if m != primary]
    # One probe per member commits with synchronous_commit=local, so only the lease fence (not the
    # synchronous standbys) stops it: its acks show when each server accepted writes. Its rows on the
    # old primary after the cut are not replicated by design and are not the application's acks.
    probes = [Writer(m, dsn(cluster, m, options="-c synchronous_commit=local"), (i + 1) * 100_000_000,
                     interval=0.05, deadline=2.0, read_only_pause=0.1) for i, m in enumerate(MEMBERS)]
    log = StatusLog(cluster)
    with writing(cluster) as writer, log.running():
        for probe in probes:
            probe.start()
        try:
            start = time.monotonic()
            with isolated(cluster, primary):
                time.sleep(30)
                end = time.monotonic()
            deadline = time.monotonic() + 120
            while not ((st := cluster.status(primary)) and st.get("role") == "replica"
                       and (st.get("postgres") or {}).get("streaming")):
                assert time.monotonic() < deadline, f"{primary} did not rejoin as a replica: {st}"
                time.sleep(0.2)
            rejoined = time.monotonic()
            new = cluster.wait_healthy(MEMBERS, timeout=60)
            writer.wait_commits(20)
        finally:
            for probe in probes:
                probe.stop()
            for probe in probes:
                probe.join(timeout=15)
    old_address = cluster.address(primary)
    probe_log = [a for p in probes for a in p.log]
    old_acks = [a.t_done for a in probe_log if a.outcome != "fail" and a.node == old_address]
    last_old = max(old_acks, default=-math.inf) - start
    new_leader_polls = [p.t for p in log.between(start) if p.member in others and p.status
                        and p.status.get("role") == "primary" and p.status.get("is_leader")]
    new_at = min(new_leader_polls, default=math.inf) - start
    app_new = [a.t_done for a in writer.log if a.outcome == "ack" and a.t_done > start and a.node != old_address]
    app_old = [a.t_done for a in writer.log if a.outcome == "ack" and a.t_done > start and a.node == old_address]
    report("d: primary isolated 30 s", old_primary_last_ack_after_cut_s=last_old, new_primary_after_s=new_at,
           new_primary=new, app_first_ack_on_new_s=min(app_new, default=math.inf) - start,
           rejoin_after_heal_s=rejoined - end,
           app_acks_on_old_after_cut=len(app_old), app_last_ack_on_old_s=max(app_old, default=start) - start)
    assert last_old < FENCE_BOUND, f"the old primary acknowledged a commit {last_old:.2f}s after the cut"
    assert new in others and new_at < 30, "no other member led during the cut"
    assert split_brain_windows([*probe_log, *writer.log]) == [], "two servers accepted writes at the same time"
    assert_nothing_lost(cluster, writer)
