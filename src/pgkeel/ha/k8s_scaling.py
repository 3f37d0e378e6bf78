"""Scaling on Kubernetes: which membership to record when the StatefulSet's spec.replicas changes. Pure.

No operator: `kubectl scale statefulset/<name> --replicas=5` changes which pods the controller runs,
and the leader's agent follows by recording the membership (pgkeel.ha.records.Membership) that every
agent takes from its next loop (pgkeel.ha.membership: sync set, slots, candidates). The rules, first
match wins:
- nothing is known without the StatefulSet's replicas and the store;
- the members already are `<sts>-0 … <sts>-(r-1)`: nothing to do;
- a count the document could not have (even, below 1, above 9; below 3 in quorum mode) is refused:
  every agent warns, naming spec.replicas and the fix, and the membership stays — never an even one;
- only the leader records, while it runs as primary and no switchover is under way;
- a leader whose own ordinal goes never records a membership without itself: its pod's deletion
  hands the lease over (pgkeel.agent.drain) and the next leader records;
- growth records once k' of the current others stream: the larger set's `ANY k'` is then met by old
  members alone while the new pods clone;
- shrinking records at once: the controller deletes the highest ordinals itself, and a sync set that
  waits for pods going away would stop writes.
The change of the sync set itself stays the sync record's safe transitions (pgkeel.ha.sync). k is the
document's rule for the new size (pgkeel.document.sync_standbys_for); an explicit syncStandbys that no
longer fits is capped, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pgkeel.document import instances_problem, sync_standbys_for
from pgkeel.ha.records import ClusterState
from pgkeel.ha.settings import HASettings, Mode
from pgkeel.ha.switchover_request import can_take_over


@dataclass(frozen=True)
class ScaleView:
    """What one scaling round observed: the StatefulSet's replicas and the agent's last view of the store."""

    me: str
    stateful_set: str  # its pods, and so the members, are <stateful_set>-<ordinal>
    replicas: int | None  # spec.replicas; None: the StatefulSet could not be read
    members: tuple[str, ...]  # the current membership: recorded, else the document's
    cluster: ClusterState | None  # None: the store could not be read
    settings: HASettings  # the document's (mode, explicit syncStandbys, member tags)

    @property
    def target(self) -> tuple[str, ...]:
        return tuple(f"{self.stateful_set}-{i}" for i in range(self.replicas or 0))

    @property
    def leader(self) -> str | None:
        return self.cluster.leader_name if self.cluster else None


@dataclass(frozen=True)
class RecordMembership:
    members: tuple[str, ...]
    sync_standbys: int
    reason: str
    warning: str = ""  # an explicit syncStandbys capped to the new size


@dataclass(frozen=True)
class ScaleWait:
    reason: str


@dataclass(frozen=True)
class RefuseScale:
    reason: str  # logged as a warning: it names spec.replicas and the fix


AnyScaleAction = RecordMembership | ScaleWait | RefuseScale


@dataclass(frozen=True)
class ScaleDecision:
    rule: str
    action: AnyScaleAction | None = None

    @property
    def reason(self) -> str:
        return self.action.reason if self.action else ""

    @property
    def under_way(self) -> bool:
        """A membership change is being recorded or waited for (a refusal waits for the operator instead)."""
        return isinstance(self.action, RecordMembership | ScaleWait)


# --- facts ---------------------------------------------------------------------------------------
def eligible(v: ScaleView) -> int:
    """Standbys of the new membership that may be synchronous (tags as in ClusterSpec.sync_eligible)."""
    return len(v.target) - 1 - len(v.settings.sync_excluded & set(v.target))


def new_k(v: ScaleView) -> tuple[int, str]:
    """k for the new size, and a warning when the document's explicit syncStandbys had to be capped."""
    explicit, fits = v.settings.explicit_sync_standbys, eligible(v)
    if v.settings.mode is Mode.QUORUM and explicit is not None and explicit > fits:
        k = sync_standbys_for(v.settings.mode, len(v.target), fits, fits)
        return k, (f"replication.syncStandbys: {explicit} does not fit {len(v.target)} members ({fits} standby(s) "
                   f"may be synchronous): using {k}; set syncStandbys to at most {fits} in the document")
    return sync_standbys_for(v.settings.mode, len(v.target), fits, explicit), ""


def refusal(v: ScaleView) -> str | None:
    """Why spec.replicas cannot become the membership; None when it can."""
    assert v.replicas is not None
    problem = instances_problem(v.replicas)
    if problem is None and v.settings.mode is Mode.QUORUM and v.replicas < 3:
        problem = f"replication.mode quorum needs at least 3; got {v.replicas}"
    if problem is None and v.settings.mode is Mode.QUORUM and eligible(v) < 1:
        problem = f"with the members tagged noSync/noFailover no standby of {v.replicas} may be synchronous"
    if problem is None:
        return None
    fix = len(v.members)
    return (f"StatefulSet {v.stateful_set} spec.replicas: {problem}. The membership stays {', '.join(v.members)}; "
            f"fix: kubectl scale statefulset/{v.stateful_set} --replicas={fix} (or another odd count)")


def streaming_others(v: ScaleView) -> int:
    assert v.cluster is not None
    return sum(1 for m in v.members if m != v.me and can_take_over(v.cluster.members.get(m)))


# --- predicates ---------------------------------------------------------------------------------
def nothing_known(v: ScaleView) -> bool:
    return v.replicas is None or v.cluster is None


def in_step(v: ScaleView) -> bool:
    return set(v.target) == set(v.members)


def refused(v: ScaleView) -> bool:
    return refusal(v) is not None


def not_leader(v: ScaleView) -> bool:
    return v.leader != v.me


def not_serving(v: ScaleView) -> bool:
    assert v.cluster is not None
    record = v.cluster.members.get(v.me)
    return record is None or not record.running_primary or v.cluster.switchover is not None


def leader_leaves(v: ScaleView) -> bool:
    return v.me not in v.target


def growing_too_soon(v: ScaleView) -> bool:
    return len(v.target) > len(v.members) and streaming_others(v) < new_k(v)[0]


def always(v: ScaleView) -> bool:
    return True


# --- plans --------------------------------------------------------------------------------------
def idle(v: ScaleView) -> AnyScaleAction | None:
    return None


def refuse(v: ScaleView) -> AnyScaleAction | None:
    return RefuseScale(reason=refusal(v) or "")


def wait_serving(v: ScaleView) -> AnyScaleAction | None:
    return ScaleWait(reason=f"spec.replicas={v.replicas}: recorded once {v.me} runs as primary and no switchover "
                            "is under way")


def wait_hand_over(v: ScaleView) -> AnyScaleAction | None:
    return ScaleWait(reason=f"spec.replicas={v.replicas} removes the leader {v.me}: its pod's deletion hands the "
                            "lease over, and the next leader records the membership")


def wait_streaming(v: ScaleView) -> AnyScaleAction | None:
    return ScaleWait(reason=f"spec.replicas={v.replicas}: waiting until {new_k(v)[0]} current members stream "
                            f"({streaming_others(v)} do) before the sync set grows")


def record(v: ScaleView) -> AnyScaleAction | None:
    k, warning = new_k(v)
    verb = "grows" if len(v.target) > len(v.members) else "shrinks"
    return RecordMembership(members=v.target, sync_standbys=k, warning=warning,
                            reason=f"spec.replicas={v.replicas}: the membership {verb} to "
                                   f"{', '.join(v.target)} (ANY {k})")


# --- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleRule:
    name: str
    when: Callable[[ScaleView], bool]
    plan: Callable[[ScaleView], AnyScaleAction | None]
    why: str


SCALE_RULES: tuple[ScaleRule, ...] = (
    ScaleRule("scale.unknown", nothing_known, idle, "no replicas read, or no view of the store: nothing to do"),
    ScaleRule("scale.in-step", in_step, idle, "the members are the StatefulSet's pods already"),
    ScaleRule("scale.refused", refused, refuse, "an even or impossible count is never recorded: warn, keep it"),
    ScaleRule("scale.not-leader", not_leader, idle, "only the leader records the membership"),
    ScaleRule("scale.not-serving", not_serving, wait_serving, "record while running as primary, no switchover"),
    ScaleRule("scale.leader-leaves", leader_leaves, wait_hand_over, "never a membership without the leader"),
    ScaleRule("scale.grow-wait", growing_too_soon, wait_streaming, "grow once k' current members stream"),
    ScaleRule("scale.record", always, record, "record the StatefulSet's pods as the members, k for the new size"),
)


def decide_scale(v: ScaleView) -> ScaleDecision:
    for rule in SCALE_RULES:
        if rule.when(v):
            return ScaleDecision(rule.name, rule.plan(v))
    raise AssertionError("the scale table ends with a rule that always matches")
