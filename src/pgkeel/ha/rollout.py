"""Self-driven rolling updates of the StatefulSet (updateStrategy OnDelete): is this pod next, and is it safe? Pure.

With OnDelete the controller recreates a deleted pod from the update revision and replaces nothing
by itself, so each agent decides, every roll round, from its pod's revision, the others', the
store's view and the roll lock, whether to replace its own pod now. The rules (first match wins):
- one step at a time: a step takes the roll lock before it acts and keeps it until its pod runs the
  update revision and is back (a streaming replica within max_lag_bytes, or the running leader); a
  lock whose holder cannot finish is taken over once it has stayed unchanged for its duration;
- never while the cluster is unhealthy: a running leader, every member but this one a streaming
  replica within max_lag_bytes of the leader, no pod terminating;
- replicas first, highest ordinal first (the order the controller's RollingUpdate uses); the
  primary last: it asks for a switchover to a caught-up replica on the update revision, and once a
  replica it deletes its own pod like the others. The write outage of a whole roll is one switchover.
Every member computes the same "next" from the same revisions and leader, and only "next" acts, so
even before the lock's compare-and-swap no two pods decide to go at once (tests/unit/ha/test_rollout.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from pgkeel.dcs.pod import PodRevisions, RollLockState
from pgkeel.ha.records import ClusterState, MemberRecord
from pgkeel.ha.switchover_request import can_take_over

# How long a step may hold the lock before anyone may take it over: a pod's termination (grace
# period), rescheduling, volume attach and a restart of postgres from its own data fit well inside.
ROLL_LOCK_SECONDS = 600.0


class RollStep(StrEnum):
    REPLACE = "replace"  # this pod deletes itself; the controller recreates it from the update revision
    SWITCHOVER = "switchover"  # the primary hands over first, then replaces itself as a replica


@dataclass(frozen=True)
class RollView:
    """What one roll round observed: this pod, the StatefulSet, the lock and the store (the agent's last view)."""

    me: str
    members: tuple[str, ...]  # by ordinal, as the StatefulSet names them
    update_revision: str | None
    pods: PodRevisions
    lock: RollLockState | None
    cluster: ClusterState | None  # None: the store could not be read
    max_lag_bytes: int
    no_failover: frozenset[str] = frozenset()

    @property
    def my_revision(self) -> str | None:
        return self.pods.revisions.get(self.me)

    def outdated(self, name: str) -> bool:
        return self.pods.revisions.get(name) != self.update_revision


# --- actions: one immutable record each, carrying what its step needs ----------------------------
@dataclass(frozen=True, kw_only=True)
class RollAction:
    reason: str = ""

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class TakeRollLock(RollAction):
    step: RollStep
    duration: float = ROLL_LOCK_SECONDS


@dataclass(frozen=True, kw_only=True)
class ReleaseRollLock(RollAction):
    pass


@dataclass(frozen=True, kw_only=True)
class DeleteOwnPod(RollAction):
    uid: str


@dataclass(frozen=True, kw_only=True)
class RequestSwitchover(RollAction):
    leader: str  # precondition: the request stands only while this member leads
    target: str


@dataclass(frozen=True, kw_only=True)
class RollWait(RollAction):
    pass


AnyRollAction = TakeRollLock | ReleaseRollLock | DeleteOwnPod | RequestSwitchover | RollWait


@dataclass(frozen=True)
class RollDecision:
    rule: str
    actions: tuple[AnyRollAction, ...] = field(default_factory=tuple)

    @property
    def reason(self) -> str:
        return next((a.reason for a in reversed(self.actions) if a.reason), "")

    @property
    def acts(self) -> bool:
        """It changes something (the lock, the pod or the leader), beyond waiting."""
        return any(not isinstance(a, RollWait) for a in self.actions)


# --- facts ---------------------------------------------------------------------------------------
def leader(v: RollView) -> str | None:
    return v.cluster.leader_name if v.cluster else None


def _caught_up(v: RollView, record: MemberRecord | None) -> bool:
    """A streaming replica within max_lag_bytes of the leader's published position."""
    assert v.cluster is not None
    lead = v.cluster.members.get(leader(v) or "")
    if record is None or lead is None or not can_take_over(record) or record.lsn is None or lead.lsn is None:
        return False
    return lead.lsn - record.lsn <= v.max_lag_bytes


def _back(v: RollView, name: str) -> bool:
    """The member serves again: the running leader, or a caught-up streaming replica."""
    if v.cluster is None:
        return False
    record = v.cluster.members.get(name)
    if name == leader(v):
        return record is not None and record.running_primary
    return _caught_up(v, record)


def unhealthy(v: RollView) -> str | None:
    """Why replacing a pod now could leave two down, or lose the leader; None when it is safe."""
    if v.cluster is None:
        return "the store cannot be read"
    lead = leader(v)
    if lead is None:
        return "no leader holds the lease"
    if v.pods.terminating:
        return f"pod {', '.join(sorted(v.pods.terminating))} is terminating"
    for name in v.members:
        if name not in v.pods.revisions:
            return f"pod {name} does not exist (being recreated)"
        if name != v.me and not _back(v, name):
            record = v.cluster.members.get(name)
            state = f"{record.role}/{record.state}" if record else "no member record"
            wanted = "the running leader" if name == lead else "a caught-up streaming replica"
            return f"{name} is not {wanted} ({state})"
    return None


def next_to_roll(v: RollView) -> str | None:
    """The pod whose turn it is: outdated replicas by highest ordinal first, then the leader."""
    lead = leader(v)
    replicas = [m for m in reversed(v.members) if m != lead and v.outdated(m)]
    if replicas:
        return replicas[0]
    return lead if lead is not None and v.outdated(lead) else None


def switchover_target(v: RollView) -> str | None:
    """The caught-up replica on the update revision with the highest position (ties: lowest name)."""
    assert v.cluster is not None
    best: tuple[int, str] | None = None
    for name in v.members:
        record = v.cluster.members.get(name)
        if name == v.me or name in v.no_failover or v.outdated(name) or not _caught_up(v, record):
            continue
        assert record is not None and record.lsn is not None
        if best is None or record.lsn > best[0] or (record.lsn == best[0] and name < best[1]):
            best = (record.lsn, name)
    return best[1] if best else None


# --- predicates ---------------------------------------------------------------------------------
def nothing_known(v: RollView) -> bool:
    return v.update_revision is None or v.my_revision is None


def my_step_done(v: RollView) -> bool:
    return v.lock is not None and v.lock.holder == v.me and not v.outdated(v.me) and _back(v, v.me)


def my_step_finishing(v: RollView) -> bool:
    return v.lock is not None and v.lock.holder == v.me and not v.outdated(v.me)


def up_to_date(v: RollView) -> bool:
    return not v.outdated(v.me)


def locked_by_another(v: RollView) -> bool:
    lock = v.lock
    return lock is not None and lock.holder != v.me and lock.held_for < lock.duration


def cluster_unhealthy(v: RollView) -> bool:
    return unhealthy(v) is not None


def not_my_turn(v: RollView) -> bool:
    return next_to_roll(v) != v.me


def i_lead(v: RollView) -> bool:
    return leader(v) == v.me


def switchover_pending(v: RollView) -> bool:
    return i_lead(v) and v.cluster is not None and v.cluster.switchover is not None


def no_target(v: RollView) -> bool:
    return i_lead(v) and switchover_target(v) is None


def no_uid(v: RollView) -> bool:
    return v.pods.own_uid is None


def always(v: RollView) -> bool:
    return True


# --- plans --------------------------------------------------------------------------------------
def idle(v: RollView) -> list[AnyRollAction]:
    return []


def release(v: RollView) -> list[AnyRollAction]:
    return [ReleaseRollLock(reason=f"{v.me} runs {v.update_revision} and is back: the next pod may go")]


def wait_back(v: RollView) -> list[AnyRollAction]:
    return [RollWait(reason=f"{v.me} runs {v.update_revision}: holding the roll lock until it is back")]


def wait_lock(v: RollView) -> list[AnyRollAction]:
    assert v.lock is not None
    return [RollWait(reason=f"{v.lock.holder} holds the roll lock ({v.lock.step})")]


def wait_unhealthy(v: RollView) -> list[AnyRollAction]:
    return [RollWait(reason=f"not replacing {v.me} now: {unhealthy(v)}")]


def wait_turn(v: RollView) -> list[AnyRollAction]:
    return [RollWait(reason=f"{next_to_roll(v)} goes before {v.me}")]


def wait_switchover(v: RollView) -> list[AnyRollAction]:
    return [RollWait(reason="the switchover before replacing the primary is under way")]


def wait_target(v: RollView) -> list[AnyRollAction]:
    return [RollWait(reason=f"no caught-up replica runs {v.update_revision} to take over from {v.me}")]


def wait_uid(v: RollView) -> list[AnyRollAction]:
    return [RollWait(reason=f"pod {v.me}'s uid is not known yet")]


def switch_over(v: RollView) -> list[AnyRollAction]:
    target = switchover_target(v)
    assert target is not None
    return [
        TakeRollLock(step=RollStep.SWITCHOVER, reason=f"{v.me} is the last pod on {v.my_revision}: switch over first"),
        RequestSwitchover(leader=v.me, target=target, reason=f"hand the primary role to {target}"),
    ]


def replace_self(v: RollView) -> list[AnyRollAction]:
    assert v.pods.own_uid is not None
    return [
        TakeRollLock(step=RollStep.REPLACE, reason=f"{v.me}'s turn to move from {v.my_revision}"),
        DeleteOwnPod(uid=v.pods.own_uid, reason=f"delete pod {v.me}: recreated from {v.update_revision}"),
    ]


# --- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RollRule:
    name: str
    when: Callable[[RollView], bool]
    plan: Callable[[RollView], list[AnyRollAction]]
    why: str


ROLL_RULES: tuple[RollRule, ...] = (
    RollRule("roll.unknown", nothing_known, idle, "no update revision, or no revision of this pod: nothing to roll"),
    RollRule("roll.done", my_step_done, release, "this pod's step is done (update revision, back): release the lock"),
    RollRule("roll.coming-back", my_step_finishing, wait_back, "on the update revision: hold the lock until back"),
    RollRule("roll.up-to-date", up_to_date, idle, "this pod runs the update revision"),
    RollRule("roll.locked", locked_by_another, wait_lock, "another pod's step holds the lock (for its duration)"),
    RollRule("roll.unhealthy", cluster_unhealthy, wait_unhealthy, "replace nothing unless every other member serves"),
    RollRule("roll.not-my-turn", not_my_turn, wait_turn, "replicas by highest ordinal first, the primary last"),
    RollRule("roll.switchover-pending", switchover_pending, wait_switchover, "the primary's switchover is under way"),
    RollRule("roll.no-target", no_target, wait_target, "the primary waits for a caught-up replica on the new revision"),
    RollRule("roll.switchover", i_lead, switch_over, "the primary is last: switch over to a caught-up updated replica"),
    RollRule("roll.no-uid", no_uid, wait_uid, "the pod's own deletion needs its uid (precondition)"),
    RollRule("roll.replace", always, replace_self, "take the lock and delete this pod: the controller recreates it"),
)


def decide_roll(v: RollView) -> RollDecision:
    for rule in ROLL_RULES:
        if rule.when(v):
            return RollDecision(rule.name, tuple(rule.plan(v)))
    raise AssertionError("the roll table ends with a rule that always matches")


def roll_table() -> list[tuple[str, str]]:
    return [(r.name, r.why) for r in ROLL_RULES]
