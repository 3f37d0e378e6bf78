"""The self-driven rolling update (pgkeel.ha.rollout): who replaces its pod next, and only when it is safe.

Examples per rule, then properties over generated clusters: never two pods at once, never while
unhealthy, the primary never deletes itself while it leads, replicas by highest ordinal first.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import replace

from builders import primary_record, record
from hypothesis import given, settings
from hypothesis import strategies as st

from pgkeel.dcs import Leader
from pgkeel.dcs.pod import PodRevisions, RollLockState
from pgkeel.ha.records import ClusterState, MemberRecord, MemberState, Role, SwitchoverRequest
from pgkeel.ha.rollout import (
    ROLL_LOCK_SECONDS,
    ROLL_RULES,
    DeleteOwnPod,
    ReleaseRollLock,
    RequestSwitchover,
    RollDecision,
    RollStep,
    RollView,
    TakeRollLock,
    decide_roll,
    next_to_roll,
)

OLD, NEW = "pg-5c9d", "pg-7f1e"
MEMBERS = ("pg-0", "pg-1", "pg-2")


def state(leader: str = "pg-0", down: tuple[str, ...] = (), lag: dict[str, int] | None = None) -> ClusterState:
    lag = lag or {}
    members: dict[str, MemberRecord] = {}
    for name in MEMBERS:
        if name in down:
            continue
        lsn = 1000 - lag.get(name, 0)
        members[name] = primary_record(name, 1000) if name == leader else record(name, lsn=lsn)
    return ClusterState(leader=Leader(leader, 1, 3.0), members=members)


def view(
    me: str,
    revisions: dict[str, str] | None = None,
    cluster: ClusterState | None = None,
    lock: RollLockState | None = None,
    terminating: frozenset[str] = frozenset(),
) -> RollView:
    revs: dict[str, str | None] = dict(revisions if revisions is not None else dict.fromkeys(MEMBERS, OLD))
    return RollView(
        me=me,
        members=MEMBERS,
        update_revision=NEW,
        pods=PodRevisions(revisions=revs, terminating=terminating, own_uid=f"uid-{me}"),
        lock=lock,
        cluster=cluster if cluster is not None else state(),
        max_lag_bytes=100,
    )


def lock(holder: str, held_for: float = 1.0, step: RollStep = RollStep.REPLACE) -> RollLockState:
    return RollLockState(holder=holder, step=step, held_for=held_for, duration=ROLL_LOCK_SECONDS)


def kinds(decision: RollDecision) -> list[str]:
    return [a.kind for a in decision.actions]


# --- one example per rule ------------------------------------------------------------------------
def test_roll_unknown() -> None:
    v = replace(view("pg-2"), update_revision=None)
    assert decide_roll(v).rule == "roll.unknown" and not decide_roll(v).actions


def test_roll_replace() -> None:
    decision = decide_roll(view("pg-2"))  # the highest ordinal goes first
    assert decision.rule == "roll.replace"
    assert decision.actions == (
        TakeRollLock(step=RollStep.REPLACE, reason=decision.actions[0].reason),
        DeleteOwnPod(uid="uid-pg-2", reason=decision.actions[1].reason),
    )


def test_roll_not_my_turn() -> None:
    assert decide_roll(view("pg-1")).rule == "roll.not-my-turn"
    assert decide_roll(view("pg-0")).rule == "roll.not-my-turn"  # the primary goes last


def test_roll_locked() -> None:
    decision = decide_roll(view("pg-2", lock=lock("pg-1")))
    assert decision.rule == "roll.locked" and not decision.acts


def test_roll_unhealthy() -> None:
    lagging = view("pg-2", cluster=state(lag={"pg-1": 101}))
    assert decide_roll(lagging).rule == "roll.unhealthy"
    assert "pg-1" in decide_roll(lagging).reason
    assert decide_roll(view("pg-2", cluster=state(down=("pg-1",)))).rule == "roll.unhealthy"
    assert decide_roll(view("pg-2", terminating=frozenset({"pg-1"}))).rule == "roll.unhealthy"
    no_leader = replace(state(), leader=None)
    assert decide_roll(view("pg-2", cluster=no_leader)).rule == "roll.unhealthy"
    outage = replace(view("pg-2"), cluster=None)
    assert decide_roll(outage).rule == "roll.unhealthy"
    # This pod's own state does not matter: it is the one going down.
    assert decide_roll(view("pg-2", cluster=state(down=("pg-2",)))).rule == "roll.replace"


def test_roll_coming_back() -> None:
    revisions = {"pg-0": OLD, "pg-1": OLD, "pg-2": NEW}
    v = view("pg-2", revisions, cluster=state(down=("pg-2",)), lock=lock("pg-2"))
    decision = decide_roll(v)
    assert decision.rule == "roll.coming-back" and not decision.acts


def test_roll_done() -> None:
    revisions = {"pg-0": OLD, "pg-1": OLD, "pg-2": NEW}
    decision = decide_roll(view("pg-2", revisions, lock=lock("pg-2")))
    assert decision.rule == "roll.done"
    assert kinds(decision) == ["ReleaseRollLock"]
    # ... and then pg-1 is next
    assert decide_roll(view("pg-1", revisions)).rule == "roll.replace"


def test_roll_up_to_date() -> None:
    revisions = {"pg-0": OLD, "pg-1": OLD, "pg-2": NEW}
    assert decide_roll(view("pg-2", revisions)).rule == "roll.up-to-date"


def test_roll_switchover() -> None:
    revisions = {"pg-0": OLD, "pg-1": NEW, "pg-2": NEW}
    cluster = state(lag={"pg-1": 5, "pg-2": 0})
    decision = decide_roll(view("pg-0", revisions, cluster))
    assert decision.rule == "roll.switchover"
    assert decision.actions[0] == TakeRollLock(step=RollStep.SWITCHOVER, reason=decision.actions[0].reason)
    assert decision.actions[1] == RequestSwitchover(leader="pg-0", target="pg-2", reason=decision.actions[1].reason)


def test_roll_switchover_pending() -> None:
    revisions = {"pg-0": OLD, "pg-1": NEW, "pg-2": NEW}
    cluster = replace(state(), switchover=SwitchoverRequest(source="pg-0", target="pg-2"))
    decision = decide_roll(view("pg-0", revisions, cluster, lock=lock("pg-0", step=RollStep.SWITCHOVER)))
    assert decision.rule == "roll.switchover-pending" and not decision.acts


def test_roll_no_target() -> None:
    revisions = {"pg-0": OLD, "pg-1": NEW, "pg-2": NEW}
    v = replace(view("pg-0", revisions), no_failover=frozenset({"pg-1", "pg-2"}))
    assert decide_roll(v).rule == "roll.no-target"


def test_roll_no_uid() -> None:
    v = view("pg-2")
    v = replace(v, pods=replace(v.pods, own_uid=None))
    assert decide_roll(v).rule == "roll.no-uid"


# --- the whole sequence ------------------------------------------------------------------------
def test_the_old_primary_replaces_itself_after_the_switchover() -> None:
    """After handing over, the old primary is a replica on the old revision holding the lock: it goes."""
    revisions = {"pg-0": OLD, "pg-1": NEW, "pg-2": NEW}
    after = state(leader="pg-2")
    after.members["pg-0"] = record("pg-0", state=MemberState.RECOVERING, lsn=1000)  # still repointing
    decision = decide_roll(view("pg-0", revisions, after, lock=lock("pg-0", step=RollStep.SWITCHOVER)))
    assert decision.rule == "roll.replace"
    assert kinds(decision) == ["TakeRollLock", "DeleteOwnPod"]


def test_a_lock_held_past_its_duration_is_taken_over() -> None:
    stale = lock("pg-1", held_for=ROLL_LOCK_SECONDS)
    assert decide_roll(view("pg-2", lock=stale)).rule == "roll.replace"
    assert decide_roll(view("pg-2", lock=lock("pg-1", held_for=ROLL_LOCK_SECONDS - 0.1))).rule == "roll.locked"


def test_simulated_roll_replaces_replicas_by_highest_ordinal_then_the_primary_once() -> None:
    """Run the decision for every member each round, applying what it asks as the controller and store would."""
    revisions = dict.fromkeys(MEMBERS, OLD)
    leader, holder, order, switchovers = "pg-0", None, [], 0
    for _ in range(30):
        cluster = state(leader=leader)
        held = lock(holder) if holder else None
        for me in MEMBERS:
            decision = decide_roll(view(me, dict(revisions), cluster, held))
            for action in decision.actions:
                if isinstance(action, TakeRollLock):
                    assert holder in (None, me), "two steps at once"
                    holder = me
                elif isinstance(action, DeleteOwnPod):
                    assert me != leader
                    revisions[me] = NEW  # recreated from the update revision, and back at once
                    order.append(me)
                elif isinstance(action, ReleaseRollLock):
                    holder = None
                elif isinstance(action, RequestSwitchover):
                    leader, switchovers = action.target, switchovers + 1
            held = lock(holder) if holder else None
        if all(r == NEW for r in revisions.values()) and holder is None:
            break
    assert order == ["pg-2", "pg-1", "pg-0"]
    assert switchovers == 1 and leader != "pg-0"
    assert holder is None


# --- properties ---------------------------------------------------------------------------------
@st.composite
def clusters(draw: st.DrawFn) -> tuple[dict[str, str], ClusterState, RollLockState | None, frozenset[str]]:
    revisions = {m: draw(st.sampled_from((OLD, NEW))) for m in MEMBERS}
    leader = draw(st.sampled_from((*MEMBERS, None)))
    members: dict[str, MemberRecord] = {}
    for name in MEMBERS:
        if draw(st.booleans()):
            continue  # no record
        lsn = 1000 - draw(st.sampled_from((0, 50, 200)))
        if name == leader:
            members[name] = primary_record(name, 1000)
        else:
            kind = draw(st.sampled_from((MemberState.STREAMING, MemberState.RECOVERING, MemberState.STOPPED)))
            members[name] = record(name, Role.REPLICA, kind, lsn)
    cluster = ClusterState(leader=Leader(leader, 1, 3.0) if leader else None, members=members)
    holder = draw(st.sampled_from((*MEMBERS, None)))
    held = None if holder is None else lock(holder, held_for=draw(st.sampled_from((1.0, ROLL_LOCK_SECONDS))))
    terminating = frozenset(draw(st.sets(st.sampled_from(MEMBERS), max_size=1)))
    return revisions, cluster, held, terminating


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_never_two_pods_at_once_and_never_while_unhealthy(
    world: tuple[dict[str, str], ClusterState, RollLockState | None, frozenset[str]],
) -> None:
    revisions, cluster, held, terminating = world
    acting = []
    for me in MEMBERS:
        v = view(me, revisions, cluster, held, terminating)
        decision = decide_roll(v)
        if any(isinstance(a, TakeRollLock) for a in decision.actions):
            acting.append(me)
            assert held is None or held.holder == me or held.held_for >= held.duration
            assert not terminating and cluster.leader is not None
            assert revisions[me] == OLD
            assert me == next_to_roll(v)
            others = [m for m in MEMBERS if m not in (me, cluster.leader_name)]
            assert all(cluster.members.get(m) is not None and cluster.members[m].streaming_replica for m in others)
        if any(isinstance(a, DeleteOwnPod) for a in decision.actions):
            assert cluster.leader_name != me, "the primary hands over before its pod goes"
            older = [m for m in MEMBERS if revisions[m] == OLD and m != cluster.leader_name]
            assert me == max(older, key=MEMBERS.index), "replicas go by highest ordinal first"
    assert len(acting) <= 1, f"{acting} would both take the roll lock"


def test_every_roll_rule_has_an_example() -> None:
    here = {name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)}
    missing = [r.name for r in ROLL_RULES if "test_" + r.name.replace(".", "_").replace("-", "_") not in here]
    assert not missing, f"roll rules without an example test named after them: {missing}"
