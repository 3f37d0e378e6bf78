"""Safety properties of the pure decision table and of remember(), explored with hypothesis."""

from __future__ import annotations

from dataclasses import replace

from builders import NAMES, NOW, SYSID, address, obs, probe
from hypothesis import given, settings
from hypothesis import strategies as st

from pgkeel.dcs import Leader
from pgkeel.ha import actions, model
from pgkeel.ha.election import behind_me, eligibility, last_leader_itself, old_leader_may_write, rank, witnesses
from pgkeel.ha.facts import acting_primary
from pgkeel.ha.memory import START_FAILURES_BEFORE_REWIND, remember
from pgkeel.ha.model import Decision, Memory, Observation, OldLeader, PgState
from pgkeel.ha.records import (
    BOOTSTRAP_PLACEHOLDER,
    ClusterState,
    FenceKind,
    LeaderHistory,
    MemberRecord,
    MemberState,
    Pause,
    Role,
    SwitchoverRequest,
    SyncRecord,
)
from pgkeel.ha.rules import decide
from pgkeel.ha.settings import HASettings, Mode
from pgkeel.ha.sync import SyncRule, covers, sync_plan
from pgkeel.instance import RewindOutcome


@st.composite
def pg_states(draw: st.DrawFn) -> PgState:
    has_data = draw(st.booleans())
    running = draw(st.booleans())
    return PgState(
        has_data=has_data,
        running=running,
        system_identifier=draw(st.sampled_from([SYSID, "7999", None])) if has_data else None,
        in_recovery=draw(st.sampled_from([True, False, None])) if running else None,
        timeline=draw(st.integers(1, 4)),
        lsn=draw(st.integers(0, 1000)),
        following=draw(st.sampled_from([None, str(address("pg-0")), "h:2"])),
        streaming=draw(st.booleans()),
        was_primary=draw(st.booleans()),
        wal_source_lost=draw(st.booleans()),
    )


@st.composite
def cluster_states(draw: st.DrawFn, members: tuple[str, ...]) -> ClusterState | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    holder = draw(st.sampled_from([None, *members]))
    records = {}
    for name in draw(st.sets(st.sampled_from(members))):
        a = address(name)
        records[name] = MemberRecord(
            name,
            role=draw(st.sampled_from(list(Role))),
            state=draw(st.sampled_from(list(MemberState))),
            host=a.host,
            port=a.port,
            api_url="http://x",
            lsn=draw(st.integers(0, 1000)),
        )
    sync_leader = draw(st.sampled_from(members))
    others = tuple(n for n in members if n != sync_leader)
    sync = SyncRecord(sync_leader, others, draw(st.integers(1, max(1, len(others)))), version=1)
    fence = draw(st.sampled_from(list(FenceKind)))
    history = LeaderHistory(draw(st.sampled_from(members)), address("pg-0"), 1, draw(st.integers(0, 1000)), 1, fence)
    return ClusterState(
        leader=Leader(holder, draw(st.integers(1, 9)), 3.0) if holder else None,
        members=records,
        initialize=draw(st.sampled_from([None, SYSID, BOOTSTRAP_PLACEHOLDER + "pg-0"])),
        sync=draw(st.sampled_from([None, sync])),
        sync_version=1,
        switchover=draw(
            st.sampled_from(
                [None, SwitchoverRequest(target=members[0], force=True), SwitchoverRequest(source=members[0])]
            )
        ),
        history=draw(st.sampled_from([None, history])),
        pause=draw(st.sampled_from([None, None, Pause()])),
    )


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    n = draw(st.sampled_from([1, 3, 5]))
    members = NAMES[:n]
    me = draw(st.sampled_from(members))
    peers = {}
    for name in draw(st.sets(st.sampled_from([x for x in members if x != me] or [me]))):
        if name != me:
            peers[name] = probe(
                name,
                lsn=draw(st.integers(0, 1000)),
                timeline=draw(st.integers(1, 3)),
                in_recovery=draw(st.booleans()),
                dcs_ok=draw(st.booleans()),
                detached=draw(st.booleans()),
            )
    last = draw(st.sampled_from([None, NOW - 0.1, NOW - 1.0, NOW - 1.6, NOW - 2.9, NOW - 10.0]))
    mode = draw(st.sampled_from(list(Mode)))
    return Observation(
        me=me,
        members=members,
        now=NOW,
        settings=HASettings(
            mode=mode,
            sync_standbys=draw(st.integers(1, 2)),
            no_failover=draw(st.frozensets(st.sampled_from(members), max_size=1)),
            failover_priority=draw(st.dictionaries(st.sampled_from(members), st.integers(1, 3), max_size=2)),
        ),
        pg=draw(pg_states()),
        memory=Memory(
            last_renewal=last,
            rewind_needed=draw(st.booleans()),
            acting_primary=draw(st.booleans()),
            reclone_needed=draw(st.booleans()),
        ),
        cluster=draw(cluster_states(members)),
        peers=peers,
        old_leader=draw(st.sampled_from(list(OldLeader))),
        fence=draw(st.sampled_from(list(FenceKind))),
        address=address(me),
        promised_until=draw(st.sampled_from([None, NOW - 0.5, NOW + 0.1, NOW + 2.5])),
    )


def kinds(d: Decision) -> list[str]:
    return [a.kind for a in d.actions]


def holds_lease(o: Observation) -> bool:
    return o.cluster is not None and o.cluster.leader_name == o.me


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_writable_postgres_only_with_a_lease_confirmed_in_the_same_plan(o: Observation) -> None:
    """Promote and start-as-primary come only after AcquireLeader/RenewLeader in the same plan."""
    d = decide(o)
    for i, action in enumerate(d.actions):
        writable = isinstance(action, actions.Promote) or (
            isinstance(action, actions.StartPostgres) and not action.standby
        )
        if writable:
            before = kinds(Decision(d.rule, d.actions[:i]))
            assert "AcquireLeader" in before or ("RenewLeader" in before and holds_lease(o)), (d.rule, kinds(d))


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_a_node_that_promised_the_last_leader_neither_takes_the_lease_nor_detaches_from_it(o: Observation) -> None:
    """Failsafe (pgkeel.ha.failsafe): while a promise holds, no plan acquires, promotes or stops streaming —
    unless the node holds the lease already (the promised leader handed it over in a switchover since).
    (A promise needs a cluster someone led, so a store with no cluster recorded yet is not a case.)"""
    d = decide(o)
    promised = o.promised_until is not None and o.now < o.promised_until and not holds_lease(o)
    recorded = o.cluster is not None and o.cluster.initialize is not None
    if promised and o.cluster is not None and recorded and not o.cluster.bootstrapping:
        assert not {"AcquireLeader", "Promote", "Bootstrap"} & set(kinds(d)), (d.rule, kinds(d))
        if o.cluster.leader is None:
            assert "Follow" not in kinds(d), (d.rule, kinds(d))


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_without_the_store_only_a_recent_lease_holder_asks_for_promises_and_only_the_extension_waits_past_the_fence(
    o: Observation,
) -> None:
    d = decide(o)
    if "ConfirmFailsafe" in kinds(d):
        assert o.cluster is None and o.memory.last_renewal is not None
        assert o.now - o.memory.last_renewal <= o.settings.fence_deadline or o.fence is FenceKind.EXTENSION
        action = d.actions[kinds(d).index("ConfirmFailsafe")]
        assert isinstance(action, actions.ConfirmFailsafe) and set(action.members) == set(o.members) - {o.me}


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_a_member_tagged_no_failover_takes_the_lease_only_when_forced_or_reclaiming_its_own(o: Observation) -> None:
    d = decide(o)
    if o.me in o.settings.no_failover and "AcquireLeader" in kinds(d):
        assert d.rule in ("elect.forced", "elect.reclaim"), (d.rule, kinds(d))


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_acquire_only_when_no_live_leader_and_bootstrap_only_without_a_cluster(o: Observation) -> None:
    d = decide(o)
    if "AcquireLeader" in kinds(d):
        assert o.cluster is not None and o.cluster.leader is None
    if "Bootstrap" in kinds(d):
        assert o.cluster is not None
        assert o.cluster.initialize is None or o.cluster.bootstrapping == o.me


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_while_paused_nobody_takes_the_lease_but_by_an_operators_force_or_the_running_primary(
    o: Observation,
) -> None:
    """Maintenance mode: a replica never takes over on its own; the primary may retake its own lease."""
    if o.cluster is None or o.cluster.pause is None:
        return
    d = decide(o)
    if "AcquireLeader" in kinds(d):
        request = o.cluster.switchover
        forced = request is not None and request.force and request.target == o.me
        assert forced or d.rule in ("elect.reclaim", "bootstrap.initdb", "global.claim-initialize"), d.rule
        if not forced and d.rule == "elect.reclaim":
            assert "Promote" not in kinds(d)


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_an_election_promotes_only_a_provable_candidate(o: Observation) -> None:
    d = decide(o)
    if "Promote" not in kinds(d) or o.cluster is None or o.cluster.leader is not None or d.rule == "elect.forced":
        return
    assert o.pg.running and o.pg.in_recovery is True and o.pg.following is None
    assert not o.memory.reclone_needed
    assert not o.memory.rewind_needed or last_leader_itself(o)  # nothing newer to have diverged from
    assert old_leader_may_write(o) is None and eligibility(o) is None
    mine = rank(witnesses(o)[o.me])
    for _name, p in witnesses(o).items():
        assert rank(p) <= mine
    if o.settings.mode is Mode.QUORUM:
        sync = o.cluster.sync
        assert sync is not None
        if sync.leader != o.me:
            heard = [m for m in sync.members if m in witnesses(o) or behind_me(o, m)]
            assert o.me in sync.members and len(heard) >= len(sync.members) - sync.quorum + 1
    # a peer running as a primary of this cluster always wins: it reclaims
    assert not any(
        p.running and not p.in_recovery and p.system_identifier == o.pg.system_identifier for p in o.peers.values()
    )


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_an_overdue_primary_without_the_extension_stops_writing(o: Observation) -> None:
    """Past the fence deadline a primary stops (Fence or demotion) unless pgkeel_fence refuses its commits."""
    last = o.memory.last_renewal
    overdue = last is not None and o.now - last > o.settings.fence_deadline
    if not (acting_primary(o) and overdue and o.fence is not FenceKind.EXTENSION and o.memory.refused is None):
        return
    if o.cluster is not None and (o.cluster.bootstrapping == o.me or not o.pg.has_data):
        return
    foreign = o.cluster is not None and o.cluster.initialize not in (None, o.pg.system_identifier)
    d = decide(o)
    assert "Fence" in kinds(d) or "StopPostgres" in kinds(d) or (foreign and "Refuse" in kinds(d)), d.rule


@settings(max_examples=2000, deadline=None)
@given(observations())
def test_a_lease_holder_with_standby_data_never_starts_as_primary(o: Observation) -> None:
    if not (holds_lease(o) and o.pg.has_data and not o.pg.running and (not o.pg.was_primary or o.memory.rewind_needed)):
        return
    for action in decide(o).actions:
        assert not (isinstance(action, actions.StartPostgres) and not action.standby)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=3, max_size=5), st.sampled_from(list(Mode)), st.integers(1, 3))
def test_at_most_one_node_claims_the_lease_and_it_holds_the_highest_position(
    lsns: list[int], mode: Mode, timeline_spread: int
) -> None:
    """All detached replicas see each other: exactly the best (timeline, LSN, then name) acquires."""
    members = NAMES[: len(lsns)]
    timelines = [1 + (i * 7 % timeline_spread) for i in range(len(lsns))]
    replicas = members[1:]
    sync = SyncRecord(members[0], replicas, 1, version=1)
    history = LeaderHistory(members[0], address(members[0]), 1, 0, 1, FenceKind.EXTENSION)
    state = ClusterState(leader=None, initialize=SYSID, sync=sync, sync_version=1, history=history)
    claimants = []
    for me in replicas:
        i = members.index(me)
        peers = {n: probe(n, lsns[members.index(n)], timelines[members.index(n)]) for n in replicas if n != me}
        pg = PgState(
            has_data=True, running=True, system_identifier=SYSID, in_recovery=True, timeline=timelines[i], lsn=lsns[i]
        )
        o = obs(me, pg=pg, state=state, peers=peers, mode=mode, n=len(lsns))
        if "AcquireLeader" in kinds(decide(o)):
            claimants.append(me)
    best = max(replicas, key=lambda n: (timelines[members.index(n)], lsns[members.index(n)], [-ord(c) for c in n]))
    assert claimants == [best]


# --- remember() ----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10))
def test_failed_replica_starts_lead_to_a_rewind_after_three(failures: int) -> None:
    o = obs(pg=PgState(has_data=True, system_identifier=SYSID, timeline=1, lsn=1))
    start = actions.StartPostgres(standby=True, leader=address("pg-0"))
    memory = o.memory
    for i in range(failures):
        memory = remember(replace(o, memory=memory), Decision("follow.start", (start,)), [(start, model.Failed())])
        assert memory.rewind_needed == ((i + 1) % START_FAILURES_BEFORE_REWIND == 0 or memory.rewind_needed)
    assert memory.rewind_needed == (failures >= START_FAILURES_BEFORE_REWIND)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12))
def test_bootstrap_failures_back_off_and_cap(failures: int) -> None:
    o = obs("pg-0", pg=PgState())
    bootstrap = actions.Bootstrap(placeholder=BOOTSTRAP_PLACEHOLDER + "pg-0")
    memory = o.memory
    waits = []
    for _ in range(failures):
        memory = remember(
            replace(o, memory=memory), Decision("bootstrap.initdb", (bootstrap,)), [(bootstrap, model.Failed())]
        )
        waits.append(memory.retry_bootstrap_at - o.now)
    assert waits == sorted(waits) and waits[0] >= 1.0 and waits[-1] <= 60.0


def test_a_switchover_that_stopped_postgres_without_handing_over_never_restarts_as_primary() -> None:
    o = obs("pg-0", pg=PgState(has_data=True, running=True, system_identifier=SYSID, in_recovery=False, lsn=5))
    stop, confirm = actions.StopPostgres(), actions.ConfirmReceived(target="pg-1", address=address("pg-1"), within=1.5)
    memory = remember(
        o, Decision("lead.switchover", (stop, confirm)), [(stop, model.Done()), (confirm, model.Failed())]
    )
    assert memory.switchover_aborted and memory.rewind_needed
    after = decide(obs("pg-0", pg=PgState(has_data=True, system_identifier=SYSID, was_primary=True), memory=memory))
    assert after.rule == "lead.switchover-aborted"
    assert all(a.standby for a in after.actions if isinstance(a, actions.StartPostgres))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(RewindOutcome)), st.integers(0, 5))
def test_only_divergence_leads_to_a_reclone(outcome: RewindOutcome, failures: int) -> None:
    o = obs(
        pg=PgState(has_data=True, system_identifier=SYSID), memory=Memory(rewind_needed=True, rewind_failures=failures)
    )
    rewind = actions.Rewind(leader="pg-0", address=address("pg-0"))
    memory = remember(o, Decision("follow.rewind", (rewind,)), [(rewind, model.Rewound(ok=False, result=outcome))])
    assert memory.reclone_needed == outcome.needs_reclone
    if outcome in (RewindOutcome.UNREACHABLE, RewindOutcome.FAILED):
        assert memory.retry_rewind_at > o.now and memory.rewind_needed


# --- quorum rule changes ------------------------------------------------------------------------------


@st.composite
def rule_changes(draw: st.DrawFn) -> tuple[tuple[str, ...], int, tuple[str, ...], int]:
    pool = (*NAMES[1:], "pg-5", "pg-6")
    old = tuple(sorted(draw(st.sets(st.sampled_from(pool), min_size=1, max_size=4))))
    new = tuple(sorted(draw(st.sets(st.sampled_from(pool), min_size=1, max_size=4))))
    return old, draw(st.integers(1, len(old))), new, draw(st.integers(1, len(new)))


@settings(max_examples=1500, deadline=None)
@given(rule_changes(), st.data())
def test_changing_the_synchronous_set_keeps_every_acknowledged_commit_provable(
    change: tuple[tuple[str, ...], int, tuple[str, ...], int], data: st.DataObject,
) -> None:
    """Drive sync_plan to completion; every record written covers every postgres rule commits were acknowledged under,
    or the new set had flushed past the switch point first. Which standbys are connected at first varies (a scaling:
    old members gone, new ones still cloning), which changes the bridge postgres takes, never the proof."""
    old_members, old_k, new_members, new_k = change
    leaving = tuple(m for m in old_members if m not in new_members)
    staying = data.draw(st.sets(st.sampled_from(leaving))) if leaving else set()
    late = data.draw(st.sets(st.sampled_from(new_members)))  # not connected in the first round
    members = ("pg-0", *new_members)
    record = SyncRecord("pg-0", old_members, old_k, version=1)
    rule: SyncRule = SyncRule(old_members, old_k)
    acked_under = [rule]  # the rules commits were acknowledged under since the record was last proven
    memory = Memory()
    for round_ in range(6):
        flushes = [model.ReplicaFlush(m, None if round_ == 0 and m in late else 2000) for m in new_members]
        pg = PgState(
            has_data=True,
            running=True,
            system_identifier=SYSID,
            in_recovery=False,
            lsn=1000,
            sync_standby_names=rule.render(),
            replication=(*flushes, *(model.ReplicaFlush(m, 2000) for m in sorted(staying))),
        )
        o = Observation(
            me="pg-0",
            members=members,
            now=NOW,
            settings=HASettings(sync_standbys=new_k),
            pg=pg,
            memory=memory,
            cluster=ClusterState(leader=Leader("pg-0", 1, 3.0), sync=record, sync_version=record.version),
        )
        plan = sync_plan(o)
        if not plan:
            break
        for action in plan:
            if isinstance(action, actions.SetSyncNames):
                new_rule = SyncRule.parse(action.names)
                assert new_rule is not None
                assert covers(record, new_rule), "postgres moved to a rule the record in force does not cover"
                rule = new_rule
                acked_under.append(rule)
                memory = replace(memory, sync_switch=model.SyncSwitch(rule.members, rule.quorum, 1500))
            elif isinstance(action, actions.WriteSyncRecord):
                flushed = memory.sync_switch is not None  # every member of the new set flushed to 2000 > 1500
                assert all(covers(action.record, r) for r in acked_under) or flushed
                record = replace(action.record, version=record.version + 1)
                acked_under = [rule]
                memory = replace(memory, sync_switch=None)
    assert record.members == new_members and record.quorum == new_k
    assert rule == SyncRule(new_members, new_k)
