"""Predicates and plans of the lead section: this node holds the lease (pure)."""

from __future__ import annotations

from pgkeel.ha.actions import (
    AnyAction,
    Checkpoint,
    ClearSwitchover,
    ConfirmReceived,
    DropSlots,
    EnsureSlots,
    Fence,
    HandOver,
    Promote,
    RecordHistory,
    ReleaseLeader,
    RenewLeader,
    StartPostgres,
    StopPostgres,
    Wait,
)
from pgkeel.ha.facts import (
    due_switchover,
    i_lead,
    leader_history,
    paused,
    promotion_event,
    publish,
    record_promotion,
    role_unknown,
    stale_slots,
    switchover_target,
)
from pgkeel.ha.model import Observation
from pgkeel.ha.records import (
    EventKind,
    Role,
)
from pgkeel.ha.sync import sync_names, sync_plan
from pgkeel.instance import slot_name_for

# --- lead --------------------------------------------------------------------------------------------


def leading_and_not_answering_too_long(o: Observation) -> bool:
    since = o.memory.not_answering_since
    return i_lead(o) and role_unknown(o) and since is not None and o.now - since > o.settings.not_answering_timeout


def release_and_fence(o: Observation) -> list[AnyAction]:
    return [
        ReleaseLeader(reason=f"postgres has not answered for {o.settings.not_answering_timeout:g}s: hand over"),
        Fence(sync_names=sync_names(o)),
    ]


def leading_and_not_answering(o: Observation) -> bool:
    return i_lead(o) and role_unknown(o)


def renew_and_wait(o: Observation) -> list[AnyAction]:
    return [RenewLeader(), publish(o, Role.STARTING), Wait(reason="postgres is running but not answering yet")]


def leading_after_aborted_switchover(o: Observation) -> bool:
    return i_lead(o) and not o.pg.running and o.memory.switchover_aborted


def restart_after_aborted_switchover(o: Observation) -> list[AnyAction]:
    return [
        RenewLeader(),
        ClearSwitchover(reason="switchover aborted"),
        StartPostgres(
            standby=True, leader=None, sync_names=sync_names(o), reason="switchover aborted: start read-only"
        ),
    ]


def leading_and_down_too_long(o: Observation) -> bool:
    down = o.memory.pg_down_since
    if paused(o):  # maintenance mode: an operator may have stopped it on purpose, and nobody would take over
        return False
    return i_lead(o) and not o.pg.running and down is not None and o.now - down > o.settings.restart_timeout


def release(o: Observation) -> list[AnyAction]:
    return [
        ReleaseLeader(reason=f"postgres not back within {o.settings.restart_timeout:g}s: hand over leadership"),
        publish(o, Role.REPLICA),
    ]


def leading_down_with_standby_data(o: Observation) -> bool:
    return i_lead(o) and not o.pg.running and (not o.pg.was_primary or o.memory.rewind_needed)


def restart_leader_as_standby(o: Observation) -> list[AnyAction]:
    return [
        RenewLeader(),
        StartPostgres(
            standby=True,
            leader=None,
            sync_names=sync_names(o),
            reason="lease holder with standby data: start read-only, then promote (a new timeline)",
        ),
    ]


def leading_and_down(o: Observation) -> bool:
    return i_lead(o) and not o.pg.running


def restart_leader(o: Observation) -> list[AnyAction]:
    return [
        RenewLeader(),
        StartPostgres(standby=False, sync_names=sync_names(o), reason="leader's postgres is down: restart in place"),
    ]


def leading_as_standby(o: Observation) -> bool:
    return i_lead(o) and o.pg.in_recovery is True


def promote_leader(o: Observation) -> list[AnyAction]:
    return [
        RenewLeader(),
        record_promotion(o),
        *sync_plan(o),
        Promote(
            sync_names=sync_names(o),
            within=o.settings.fence_deadline,
            event=promotion_event(o, EventKind.SWITCHOVER),
            reason="holding the lease as a replica (switchover target or interrupted promotion)",
        ),
        publish(o, Role.PRIMARY),
    ]


def switchover_requested(o: Observation) -> bool:
    return i_lead(o) and switchover_target(o) is not None


def switchover(o: Observation) -> list[AnyAction]:
    found = switchover_target(o)
    assert found is not None
    target, record = found
    assert record.address is not None
    budget = o.settings.fence_deadline / 2
    return [
        RenewLeader(),
        publish(o, Role.PRIMARY),
        Checkpoint(budget=budget, reason=f"switchover requested to {target}: checkpoint while serving"),
        RenewLeader(),
        StopPostgres(mode="fast", reason="switchover: stop so the walsenders ship everything"),
        ConfirmReceived(target=target, address=record.address, within=o.settings.fence_deadline),
        HandOver(target=target, api_url=record.api_url, reason=f"switchover: hand the lease to {target}"),
        ClearSwitchover(),
    ]


def switchover_without_target(o: Observation) -> bool:
    request = due_switchover(o)  # a scheduled request not yet due is kept: the target may be streaming by then
    return i_lead(o) and request is not None and request.source in (None, o.me) and request.target != o.me


def clear_switchover(o: Observation) -> list[AnyAction]:
    return [
        RenewLeader(),
        publish(o, Role.PRIMARY),
        ClearSwitchover(reason="switchover requested but no streaming replica can take over"),
    ]


def leading(o: Observation) -> bool:
    return i_lead(o)


def serve(o: Observation) -> list[AnyAction]:
    actions: list[AnyAction] = [RenewLeader(), publish(o, Role.PRIMARY)]
    history = leader_history(o)
    if history != o.memory.history_written:
        actions.append(RecordHistory(history=history))
    request = o.cluster.switchover if o.cluster else None
    if request is not None and request.target == o.me:
        actions.append(ClearSwitchover(reason="already the leader"))
    actions += sync_plan(o)
    wanted = {slot_name_for(m) for m in o.others}
    lost = tuple(sorted(wanted & o.pg.lost_slots))
    reason = f"slots whose WAL is gone, made afresh for their members' re-clone: {', '.join(lost)}" if lost else ""
    actions.append(EnsureSlots(names=o.others, recreate=lost, reason=reason))
    stale = stale_slots(o)
    if stale:
        actions.append(DropSlots(slots=stale, reason="slots of members no longer configured"))
    return actions
