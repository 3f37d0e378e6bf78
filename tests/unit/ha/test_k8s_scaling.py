"""Scaling on Kubernetes (pgkeel.ha.k8s_scaling): which membership the leader records when spec.replicas changes.

One example per rule, then the properties: never an even membership, never one without the leader,
only the leader records, k always the document's rule for the new size.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from builders import primary_record, record
from hypothesis import given
from hypothesis import strategies as st

from pgkeel.dcs import Leader
from pgkeel.document import sync_standbys_for
from pgkeel.ha.k8s_scaling import (
    SCALE_RULES,
    RecordMembership,
    RefuseScale,
    ScaleView,
    ScaleWait,
    decide_scale,
)
from pgkeel.ha.records import ClusterState, MemberRecord, Membership, MemberState, Role, SwitchoverRequest
from pgkeel.ha.settings import HASettings, Mode

STS = "pg"
THREE = ("pg-0", "pg-1", "pg-2")
FIVE = ("pg-0", "pg-1", "pg-2", "pg-3", "pg-4")


def state(members: tuple[str, ...] = THREE, leader: str = "pg-0", down: tuple[str, ...] = (),
          membership: Membership | None = None) -> ClusterState:
    records: dict[str, MemberRecord] = {}
    for name in members:
        if name not in down:
            records[name] = primary_record(name, 1000) if name == leader else record(name, lsn=1000)
    return ClusterState(leader=Leader(leader, 1, 3.0), members=records, membership=membership)


def view(replicas: int | None = 5, me: str = "pg-0", members: tuple[str, ...] = THREE,
         cluster: ClusterState | None = None, settings: HASettings | None = None) -> ScaleView:
    return ScaleView(me=me, stateful_set=STS, replicas=replicas, members=members,
                     cluster=cluster if cluster is not None else state(), settings=settings or HASettings())


# --- one example per rule ------------------------------------------------------------------------
def test_scale_unknown() -> None:
    assert decide_scale(view(replicas=None)).rule == "scale.unknown"
    assert decide_scale(replace(view(), cluster=None)).rule == "scale.unknown"
    assert decide_scale(view(replicas=None)).action is None


def test_scale_in_step() -> None:
    assert decide_scale(view(replicas=3)).rule == "scale.in-step"
    recorded = state(FIVE, membership=Membership(FIVE, 2))
    assert decide_scale(view(replicas=5, members=FIVE, cluster=recorded)).rule == "scale.in-step"


def test_scale_refused_for_even_zero_negative_and_too_many_replicas() -> None:
    for replicas in (4, 2, 0, -1, 6, 11):
        for me in ("pg-0", "pg-1"):  # every agent warns, not only the leader
            decision = decide_scale(view(replicas=replicas, me=me))
            assert decision.rule == "scale.refused", (replicas, me)
            assert isinstance(decision.action, RefuseScale)
            assert "spec.replicas" in decision.reason and "--replicas=3" in decision.reason
            assert not decision.under_way


def test_scale_refused_below_three_in_quorum_mode_but_one_is_allowed_in_async_mode() -> None:
    assert decide_scale(view(replicas=1)).rule == "scale.refused"
    async_one = decide_scale(view(replicas=1, settings=HASettings(mode=Mode.ASYNC, sync_standbys=0)))
    assert async_one.rule == "scale.record"
    assert async_one.action == RecordMembership(("pg-0",), 0, reason=async_one.reason)


def test_scale_refused_when_tags_leave_no_synchronous_standby() -> None:
    tagged = HASettings(no_sync=frozenset({"pg-1"}), no_failover=frozenset({"pg-2"}))
    assert decide_scale(view(replicas=3, members=FIVE, cluster=state(FIVE), settings=tagged)).rule == "scale.refused"


def test_scale_not_leader() -> None:
    decision = decide_scale(view(me="pg-1"))
    assert decision.rule == "scale.not-leader" and decision.action is None


def test_scale_not_serving() -> None:
    down = state()
    down.members["pg-0"] = record("pg-0", Role.PRIMARY, MemberState.STOPPED)
    assert decide_scale(view(cluster=down)).rule == "scale.not-serving"
    switching = replace(state(), switchover=SwitchoverRequest(source="pg-0", target="pg-1"))
    decision = decide_scale(view(cluster=switching))
    assert decision.rule == "scale.not-serving" and isinstance(decision.action, ScaleWait) and decision.under_way


def test_scale_leader_leaves_when_its_ordinal_is_removed() -> None:
    cluster = state(FIVE, leader="pg-4", membership=Membership(FIVE, 2))
    decision = decide_scale(view(replicas=3, me="pg-4", members=FIVE, cluster=cluster))
    assert decision.rule == "scale.leader-leaves" and isinstance(decision.action, ScaleWait)
    # once the drain handed the lease to a member that stays, that one records
    after = state(FIVE, leader="pg-1", down=("pg-4",), membership=Membership(FIVE, 2))
    decision = decide_scale(view(replicas=3, me="pg-1", members=FIVE, cluster=after))
    assert decision.action == RecordMembership(THREE, 1, reason=decision.reason)


def test_scale_grow_wait_until_k_of_the_current_members_stream() -> None:
    decision = decide_scale(view(cluster=state(down=("pg-2",))))
    assert decision.rule == "scale.grow-wait" and "1 do" in decision.reason
    # to 7 (k 3) the two old replicas are not enough either
    assert decide_scale(view(replicas=7)).rule == "scale.grow-wait"


def test_scale_record_growth_at_once_with_k_for_the_new_size() -> None:
    decision = decide_scale(view(replicas=5))
    assert decision.rule == "scale.record"
    assert decision.action == RecordMembership(FIVE, 2, reason=decision.reason)
    assert "ANY 2" in decision.reason


def test_scale_record_shrink_at_once_even_with_the_removed_pods_down() -> None:
    cluster = state(FIVE, down=("pg-3", "pg-4", "pg-2"), membership=Membership(FIVE, 2))
    decision = decide_scale(view(replicas=3, members=FIVE, cluster=cluster))
    assert decision.action == RecordMembership(THREE, 1, reason=decision.reason)


def test_an_explicit_sync_standbys_is_kept_where_it_fits_and_capped_with_a_warning_where_not() -> None:
    kept = decide_scale(view(replicas=5, settings=HASettings(sync_standbys=1, explicit_sync_standbys=1)))
    assert isinstance(kept.action, RecordMembership) and kept.action.sync_standbys == 1 and not kept.action.warning
    strict = HASettings(sync_standbys=4, explicit_sync_standbys=4)
    shrunk = decide_scale(view(replicas=3, members=FIVE, cluster=state(FIVE, membership=Membership(FIVE, 4)),
                               settings=strict))
    assert isinstance(shrunk.action, RecordMembership) and shrunk.action.sync_standbys == 2
    assert "syncStandbys: 4" in shrunk.action.warning and "at most 2" in shrunk.action.warning


def test_tagged_members_shrink_the_default_k_as_the_document_does() -> None:
    tagged = HASettings(no_sync=frozenset({"pg-3"}), no_failover=frozenset({"pg-4"}))
    decision = decide_scale(view(replicas=5, settings=tagged))
    assert isinstance(decision.action, RecordMembership) and decision.action.sync_standbys == 1  # min(2, 2 - 1)


def test_every_rule_has_an_example_here() -> None:
    source = Path(__file__).read_text()
    for rule in SCALE_RULES:
        assert f"test_{rule.name.replace('scale.', 'scale_').replace('-', '_')}" in source, rule.name


# --- properties ----------------------------------------------------------------------------------
@given(
    replicas=st.integers(min_value=-2, max_value=11),
    size=st.sampled_from([3, 5]),
    me=st.integers(min_value=0, max_value=4),
    leader=st.integers(min_value=0, max_value=4),
    down=st.sets(st.integers(min_value=0, max_value=4)),
    explicit=st.one_of(st.none(), st.integers(min_value=1, max_value=6)),
)
def test_never_an_even_membership_never_without_the_leader_only_by_the_leader(
    replicas: int, size: int, me: int, leader: int, down: set[int], explicit: int | None,
) -> None:
    members = tuple(f"pg-{i}" for i in range(size))
    lead = f"pg-{leader}" if leader < size else "pg-0"
    cluster = state(members, leader=lead, down=tuple(f"pg-{i}" for i in down if f"pg-{i}" != lead))
    settings = HASettings(explicit_sync_standbys=explicit)
    decision = decide_scale(view(replicas=replicas, me=f"pg-{me}", members=members, cluster=cluster,
                                 settings=settings))
    if isinstance(decision.action, RecordMembership):
        recorded = decision.action
        assert len(recorded.members) % 2 == 1 and len(recorded.members) >= 3
        assert f"pg-{me}" == lead and lead in recorded.members
        assert recorded.members == tuple(f"pg-{i}" for i in range(replicas))
        fits = len(recorded.members) - 1
        wanted = explicit if explicit is not None and explicit <= fits else (fits if explicit else None)
        assert recorded.sync_standbys == sync_standbys_for("quorum", len(recorded.members), fits, wanted)
        assert 1 <= recorded.sync_standbys <= fits
