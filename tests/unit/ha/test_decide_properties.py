"""Safety properties of the pure decision function, explored with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pgkeel.dcs.base import ClusterView, Leader, Member
from pgkeel.ha import model as m
from pgkeel.ha.decide import decide, eligibility

NAMES = ("pg-0", "pg-1", "pg-2", "pg-3", "pg-4")
SYSID = "7000000000000000001"


def settings_for(mode: str, k: int = 1) -> m.HASettings:
    return m.HASettings(mode=mode, sync_standbys=k)  # type: ignore[arg-type]


@st.composite
def pg_states(draw: st.DrawFn) -> m.PgState:
    has_data = draw(st.booleans())
    running = draw(st.booleans())
    return m.PgState(
        has_data=has_data,
        running=running,
        system_identifier=draw(st.sampled_from([SYSID, "7999", None])) if has_data else None,
        in_recovery=draw(st.sampled_from([True, False, None])) if running else None,
        timeline=draw(st.integers(1, 4)),
        lsn=draw(st.integers(0, 1000)),
        following=draw(st.sampled_from([None, "h:1", "h:2"])),
        streaming=draw(st.booleans()),
        was_primary=draw(st.booleans()),
    )


@st.composite
def views(draw: st.DrawFn, members: tuple[str, ...]) -> ClusterView | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    holder = draw(st.sampled_from([None, *members]))
    leader = Leader(holder, draw(st.integers(1, 9)), 3.0) if holder else None
    recs = {}
    for name in draw(st.sets(st.sampled_from(members))):
        recs[name] = Member(
            name,
            {
                "role": draw(st.sampled_from(["primary", "replica", "stopped"])),
                "state": draw(st.sampled_from(["running", "streaming", "stopped"])),
                "host": "h",
                "port": draw(st.sampled_from([1, 2])),
                "lsn": draw(st.integers(0, 1000)),
                "api_url": "http://x",
            },
        )
    sync_leader = draw(st.sampled_from(members))
    sync = {
        "leader": sync_leader,
        "members": [n for n in members if n != sync_leader],
        "quorum": draw(st.integers(1, max(1, len(members) - 1))),
    }
    return ClusterView(
        leader=leader,
        members=recs,
        initialize=draw(st.sampled_from([None, SYSID, "bootstrapping:pg-0"])),
        sync=draw(st.sampled_from([None, sync])),
        sync_version=1,
        switchover=draw(st.sampled_from([None, {"from": None, "to": members[0], "force": True}])),
    )


@st.composite
def observations(draw: st.DrawFn) -> m.Observation:
    n = draw(st.sampled_from([1, 3, 5]))
    members = NAMES[:n]
    me = draw(st.sampled_from(members))
    view = draw(views(members))
    peers = {}
    for name in draw(st.sets(st.sampled_from([x for x in members if x != me] or [me]))):
        if name == me:
            continue
        peers[name] = m.PeerProbe(name, draw(st.booleans()), draw(st.booleans()), 1, draw(st.integers(0, 1000)), SYSID)
    now = 1000.0
    last = draw(st.sampled_from([None, now - 0.1, now - 1.0, now - 2.9, now - 10.0]))
    return m.Observation(
        me=me,
        members=members,
        now=now,
        settings=settings_for(draw(st.sampled_from(["async", "quorum"])), 1),
        pg=draw(pg_states()),
        memory=m.Memory(last_renewal=last, rewind_needed=draw(st.booleans())),
        view=view,
        peers=peers,
        old_leader_alive=draw(st.booleans()),
    )


def kinds(actions: list[m.Action]) -> list[str]:
    return [a.kind for a in actions]


@settings(max_examples=1500, deadline=None)
@given(observations())
def test_promotion_and_writable_start_need_the_lease(o: m.Observation) -> None:
    """Promote / start-as-primary only for the lease holder, or right after AcquireLeader in the same list."""
    actions = kinds(decide(o))
    holds = o.view is not None and o.view.leader is not None and o.view.leader.holder == o.me
    for i, kind in enumerate(actions):
        writable = kind == "Promote" or (kind == "StartPostgres" and not decide(o)[i].standby)  # type: ignore[attr-defined]
        if writable:
            assert holds or "AcquireLeader" in actions[:i], actions


@settings(max_examples=1500, deadline=None)
@given(observations())
def test_acquire_only_when_no_live_leader(o: m.Observation) -> None:
    actions = kinds(decide(o))
    if "AcquireLeader" in actions:
        assert o.view is not None and o.view.leader is None
    if "Bootstrap" in actions:
        assert o.view is not None and o.view.initialize is None and not o.pg.has_data


@settings(max_examples=1500, deadline=None)
@given(observations())
def test_never_promote_an_ineligible_node(o: m.Observation) -> None:
    actions = decide(o)
    if "Promote" not in kinds(actions) or o.view is None or o.view.leader is not None:
        return
    forced = bool(o.view.switchover and o.view.switchover.get("force") and o.view.switchover.get("to") == o.me)
    if forced:
        return
    assert o.pg.running and o.pg.in_recovery
    assert not o.old_leader_alive
    assert eligibility(o, o.view) is None
    my_lsn = o.pg.lsn or 0
    for probe in o.peers.values():
        if probe.running and probe.in_recovery and probe.system_identifier == o.pg.system_identifier:
            assert (probe.lsn or 0) <= my_lsn


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.none(), st.floats(0.0, 20.0)), st.floats(1.0, 3.0))
def test_a_primary_cut_off_from_the_store_fences_after_the_deadline(since: float | None, deadline: float) -> None:
    now = 1000.0
    o = m.Observation(
        me="pg-0",
        members=NAMES[:3],
        now=now,
        settings=m.HASettings(fence_deadline=deadline),
        pg=m.PgState(has_data=True, running=True, system_identifier=SYSID, in_recovery=False, lsn=1),
        memory=m.Memory(last_renewal=None if since is None else now - since),
        view=None,
    )
    fence = "Fence" in kinds(decide(o))
    last = o.memory.last_renewal
    assert fence == (last is None or now - last > deadline)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=3, max_size=5),
    st.sampled_from(["async", "quorum"]),
)
def test_at_most_one_node_claims_the_lease_and_it_holds_the_highest_lsn(lsns: list[int], mode: str) -> None:
    """All replicas see each other during an election: exactly the best (highest LSN, then name) acquires."""
    members = NAMES[: len(lsns)]
    leader_was = members[0]
    sync = {"leader": leader_was, "members": list(members[1:]), "quorum": 1}
    view = ClusterView(leader=None, members={}, initialize=SYSID, sync=sync, sync_version=1)
    claimants = []
    replicas = members[1:]
    for me in replicas:
        idx = members.index(me)
        peers = {
            n: m.PeerProbe(n, True, True, 1, lsns[members.index(n)], SYSID) for n in replicas if n != me
        }
        o = m.Observation(
            me=me,
            members=members,
            now=100.0,
            settings=settings_for(mode),
            pg=m.PgState(has_data=True, running=True, system_identifier=SYSID, in_recovery=True, timeline=1,
                         lsn=lsns[idx], streaming=False),
            view=view,
            peers=peers,
        )
        if "AcquireLeader" in kinds(decide(o)):
            claimants.append(me)
    best = max(replicas, key=lambda n: (lsns[members.index(n)], [-ord(c) for c in n]))
    assert claimants == [best]


def test_quorum_waits_when_too_few_of_the_sync_set_answer() -> None:
    members = NAMES[:3]
    view = ClusterView(leader=None, initialize=SYSID, sync={"leader": "pg-0", "members": ["pg-1", "pg-2"], "quorum": 1})
    o = m.Observation(
        me="pg-1",
        members=members,
        now=1.0,
        settings=settings_for("quorum"),
        pg=m.PgState(has_data=True, running=True, system_identifier=SYSID, in_recovery=True, lsn=10),
        view=view,
        peers={},  # pg-2 did not answer: it might hold a commit pg-1 lacks
    )
    actions = decide(o)
    assert "Promote" not in kinds(actions)
    assert any("quorum" in a.reason for a in actions if isinstance(a, m.Wait))


def test_async_lag_bound_blocks_promotion() -> None:
    members = NAMES[:3]
    old = Member("pg-0", {"role": "primary", "state": "stopped", "lsn": 10_000_000, "host": "h", "port": 1})
    view = ClusterView(leader=None, members={"pg-0": old}, initialize=SYSID)
    o = m.Observation(
        me="pg-1",
        members=members,
        now=1.0,
        settings=m.HASettings(mode="async", max_lag_bytes=1000),
        pg=m.PgState(has_data=True, running=True, system_identifier=SYSID, in_recovery=True, lsn=5_000_000),
        view=view,
    )
    assert "Promote" not in kinds(decide(o))


def test_foreign_data_is_refused() -> None:
    view = ClusterView(leader=Leader("pg-0", 1, 3.0), initialize=SYSID)
    o = m.Observation(
        me="pg-1",
        members=NAMES[:3],
        now=1.0,
        settings=settings_for("quorum"),
        pg=m.PgState(has_data=True, running=False, system_identifier="123"),
        view=view,
    )
    actions = decide(o)
    assert kinds(actions)[-1] == "Refuse"
    assert "another cluster" in actions[-1].reason
