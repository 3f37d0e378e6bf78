"""Predicates and plans behind the rule table (pgkeel.ha.rules): pure functions of an Observation.

A predicate is evaluated only when every rule above it did not match, so each one states just
what distinguishes its case. A plan returns the actions in the order they must happen.
"""

from __future__ import annotations

from pgkeel.ha import election
from pgkeel.ha.model import (
    AcquireLeader,
    AnyAction,
    Bootstrap,
    Checkpoint,
    ClaimInitialize,
    ClearStaleClaim,
    ClearSwitchover,
    CloneFrom,
    ConfirmReceived,
    DeleteMember,
    DropSlots,
    EnsureSlots,
    Fence,
    Follow,
    HandOver,
    Observation,
    Promote,
    Publish,
    Reclone,
    RecordHistory,
    Refuse,
    ReleaseLeader,
    RenewLeader,
    Rewind,
    StartPostgres,
    StopPostgres,
    Wait,
)
from pgkeel.ha.records import (
    BOOTSTRAP_PLACEHOLDER,
    Address,
    FenceKind,
    LeaderHistory,
    MemberRecord,
    MemberState,
    Role,
)
from pgkeel.ha.sync import sync_names, sync_plan

BOOTSTRAP_CLAIM_TIMEOUT = 60.0  # a claim older than this with no lease behind it belongs to a dead bootstrap
REWIND_RETRY_MAX = 30.0

__all__ = ["AnyAction"]


def slot_name_for(member: str) -> str:
    """Physical slot names allow [a-z0-9_]: pg-0 → pg_0 (the same rule as pgkeel.instance)."""
    return "".join(c if c.isalnum() else "_" for c in member.lower())


# --- facts derived from the observation ------------------------------------------------------


def acting_primary(o: Observation) -> bool:
    """Postgres may accept writes: it runs as a primary, or its role is unknown after it was one."""
    pg = o.pg
    return pg.running and (pg.in_recovery is False or (pg.in_recovery is None and o.memory.acting_primary))


def fence_due(o: Observation) -> bool:
    last = o.memory.last_renewal
    return last is None or o.now - last > o.settings.fence_deadline


def leader_name(o: Observation) -> str | None:
    return o.cluster.leader_name if o.cluster else None


def i_lead(o: Observation) -> bool:
    return leader_name(o) == o.me


def another_leads(o: Observation) -> bool:
    name = leader_name(o)
    return name is not None and name != o.me


def no_one_leads(o: Observation) -> bool:
    return o.cluster is not None and o.cluster.leader is None


def leader_record(o: Observation) -> MemberRecord | None:
    name = leader_name(o)
    return o.cluster.members.get(name) if o.cluster and name else None


def leader_address(o: Observation) -> Address | None:
    record = leader_record(o)
    return record.address if record else None


def leader_running(o: Observation) -> bool:
    record = leader_record(o)
    return record is not None and record.running_primary


def member_state(o: Observation) -> MemberState:
    if not o.pg.running:
        return MemberState.STOPPED
    if o.pg.in_recovery:
        return MemberState.STREAMING if o.pg.streaming else MemberState.RECOVERING
    return MemberState.RUNNING


def publish(o: Observation, role: Role, state: MemberState | None = None) -> Publish:
    record = MemberRecord(
        name=o.me,
        role=role,
        state=state or member_state(o),
        host=o.address.host if o.address else None,
        port=o.address.port if o.address else None,
        api_url=o.api_url,
        timeline=o.pg.timeline,
        lsn=o.pg.lsn,
        system_identifier=o.pg.system_identifier,
        fence=o.fence,
    )
    return Publish(record=record)


def _switchover_target(o: Observation) -> tuple[str, MemberRecord] | None:
    cluster = o.cluster
    request = cluster.switchover if cluster else None
    if cluster is None or request is None or request.source not in (None, o.me) or request.target == o.me:
        return None
    names = [request.target] if request.target else list(o.others)
    best: tuple[int, str, MemberRecord] | None = None
    for name in names:
        record = cluster.members.get(name)
        if name is None or record is None or not record.streaming_replica or record.address is None:
            continue
        key = (record.lsn or 0, name)
        if best is None or key[0] > best[0] or (key[0] == best[0] and name < best[1]):
            best = (key[0], name, record)
    return (best[1], best[2]) if best else None


def _slot_advances(o: Observation) -> tuple[tuple[str, int], ...]:
    """On a replica: the others' slots follow their published positions, never past our own."""
    if o.cluster is None or o.pg.lsn is None:
        return ()
    moves = []
    for name in o.others:
        record = o.cluster.members.get(name)
        if record is not None and record.lsn is not None:
            moves.append((name, min(record.lsn, o.pg.lsn)))
    return tuple(moves)


def _stale_slots(o: Observation) -> tuple[str, ...]:
    """Our-style slots (named after members of this cluster) for members no longer configured."""
    prefixes = {slot_name_for(m).rsplit("_", 1)[0] for m in o.members}
    wanted = {slot_name_for(m) for m in o.others}
    stale = []
    for slot in sorted(o.pg.slots - wanted):
        head, _, tail = slot.rpartition("_")
        if head in prefixes and tail.isdigit() and slot != slot_name_for(o.me):
            stale.append(slot)
    return tuple(stale)


# --- global ---------------------------------------------------------------------------------------


def refused(o: Observation) -> bool:
    return o.memory.refused is not None


def refuse(o: Observation) -> list[AnyAction]:
    return [Refuse(reason=o.memory.refused or "refused")]


def store_down_and_fence_due(o: Observation) -> bool:
    return o.cluster is None and acting_primary(o) and fence_due(o) and o.fence is not FenceKind.EXTENSION


def fence(o: Observation) -> list[AnyAction]:
    return [Fence(sync_names=sync_names(o), reason="lease not renewed within the fence deadline: stop writes")]


def store_down(o: Observation) -> bool:
    return o.cluster is None


def wait_store(o: Observation) -> list[AnyAction]:
    if acting_primary(o) and fence_due(o):
        return [Wait(reason="coordination store unreachable: pgkeel_fence refuses commits until a renewal lands")]
    return [Wait(reason="coordination store unreachable")]


def own_bootstrap_claim(o: Observation) -> bool:
    return o.cluster is not None and o.cluster.bootstrapping == o.me


def resume_bootstrap(o: Observation) -> list[AnyAction]:
    placeholder = BOOTSTRAP_PLACEHOLDER + o.me
    if o.pg.has_data and o.pg.system_identifier and o.pg.running and o.pg.in_recovery is False:
        return [Bootstrap(placeholder=placeholder, reuse_claim=True, reason="finish our bootstrap: record the cluster")]
    return [Bootstrap(placeholder=placeholder, reuse_claim=True, reason="our bootstrap died midway: run it again")]


def foreign_data(o: Observation) -> bool:
    return _foreign_reason(o) is not None


def _foreign_reason(o: Observation) -> str | None:
    init = o.cluster.initialize if o.cluster else None
    sysid = o.pg.system_identifier
    if not o.pg.has_data or not init or init.startswith(BOOTSTRAP_PLACEHOLDER) or sysid is None or sysid == init:
        return None
    return (
        f"data directory belongs to another cluster (system identifier {sysid}, cluster has {init}); "
        "refusing to join. Move the data directory away to let this node clone the cluster."
    )


def refuse_foreign(o: Observation) -> list[AnyAction]:
    why = _foreign_reason(o) or "foreign data"
    stop: list[AnyAction] = [StopPostgres(mode="fast", reason=why)] if o.pg.running else []
    return [*stop, Refuse(reason=why)]


def initialize_lost(o: Observation) -> bool:
    return o.cluster is not None and o.cluster.initialize is None and bool(o.pg.system_identifier)


def claim_initialize(o: Observation) -> list[AnyAction]:
    return [
        ClaimInitialize(
            system_identifier=o.pg.system_identifier or "",
            reason="the store has no initialize key but this node holds data: claim it",
        )
    ]


def renewal_overdue_without_extension(o: Observation) -> bool:
    return (
        acting_primary(o) and o.memory.last_renewal is not None and fence_due(o) and o.fence is not FenceKind.EXTENSION
    )


# --- bootstrap -----------------------------------------------------------------------------------


def bootstrap_backing_off(o: Observation) -> bool:
    return not o.pg.has_data and o.now < o.memory.retry_bootstrap_at


def wait_bootstrap_backoff(o: Observation) -> list[AnyAction]:
    wait = o.memory.retry_bootstrap_at - o.now
    return [publish(o, Role.UNINITIALIZED), Wait(reason=f"bootstrap failed: retrying in {wait:.1f}s")]


def no_cluster_yet(o: Observation) -> bool:
    return not o.pg.has_data and o.cluster is not None and o.cluster.initialize is None


def bootstrap(o: Observation) -> list[AnyAction]:
    return [
        Bootstrap(
            placeholder=BOOTSTRAP_PLACEHOLDER + o.me,
            reason="no cluster yet: this node claims the initialize key and runs initdb",
        )
    ]


def stale_bootstrap_claim(o: Observation) -> bool:
    seen = o.memory.claim_seen_since
    return (
        not o.pg.has_data
        and o.cluster is not None
        and o.cluster.bootstrapping is not None
        and o.cluster.leader is None
        and seen is not None
        and o.now - seen > BOOTSTRAP_CLAIM_TIMEOUT
    )


def clear_stale_claim(o: Observation) -> list[AnyAction]:
    claim = o.cluster.initialize if o.cluster else None
    return [
        ClearStaleClaim(
            placeholder=claim or "",
            reason=f"bootstrap claim {claim!r} is older than {BOOTSTRAP_CLAIM_TIMEOUT:g}s with no leader: clear it",
        )
    ]


def bootstrap_in_progress(o: Observation) -> bool:
    return not o.pg.has_data and o.cluster is not None and o.cluster.bootstrapping is not None


def wait_bootstrap(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.UNINITIALIZED), Wait(reason="waiting for the bootstrap leader")]


def no_running_leader_to_clone(o: Observation) -> bool:
    return not o.pg.has_data and (not leader_running(o) or leader_address(o) is None)


def wait_leader_to_clone(o: Observation) -> list[AnyAction]:
    name = leader_name(o)
    reason = f"waiting for leader {name} to run" if name else "waiting for the bootstrap leader"
    return [publish(o, Role.UNINITIALIZED), Wait(reason=reason)]


def no_data(o: Observation) -> bool:
    return not o.pg.has_data


def clone(o: Observation) -> list[AnyAction]:
    name, address = leader_name(o) or "", leader_address(o)
    assert address is not None  # no_running_leader_to_clone matched otherwise
    return [
        publish(o, Role.CLONING, MemberState.STOPPED),
        CloneFrom(leader=name, address=address, sync_names=sync_names(o), reason=f"clone from leader {name}"),
    ]


# --- lead --------------------------------------------------------------------------------------------


def _not_answering(o: Observation) -> bool:
    return o.pg.running and o.pg.in_recovery is None


def leading_and_not_answering_too_long(o: Observation) -> bool:
    since = o.memory.not_answering_since
    return i_lead(o) and _not_answering(o) and since is not None and o.now - since > o.settings.not_answering_timeout


def release_and_fence(o: Observation) -> list[AnyAction]:
    return [
        ReleaseLeader(reason=f"postgres has not answered for {o.settings.not_answering_timeout:g}s: hand over"),
        Fence(sync_names=sync_names(o)),
    ]


def leading_and_not_answering(o: Observation) -> bool:
    return i_lead(o) and _not_answering(o)


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
            reason="holding the lease as a replica (switchover target or interrupted promotion)",
        ),
        publish(o, Role.PRIMARY),
    ]


def switchover_requested(o: Observation) -> bool:
    return i_lead(o) and _switchover_target(o) is not None


def switchover(o: Observation) -> list[AnyAction]:
    found = _switchover_target(o)
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
    cluster = o.cluster
    request = cluster.switchover if cluster else None
    return i_lead(o) and request is not None and request.source in (None, o.me) and request.target != o.me


def clear_switchover(o: Observation) -> list[AnyAction]:
    return [
        RenewLeader(),
        publish(o, Role.PRIMARY),
        ClearSwitchover(reason="switchover requested but no streaming replica can take over"),
    ]


def leading(o: Observation) -> bool:
    return i_lead(o)


def _history(o: Observation) -> LeaderHistory:
    term = o.cluster.leader.term if o.cluster and o.cluster.leader else None
    return LeaderHistory(leader=o.me, address=o.address, timeline=o.pg.timeline, lsn=o.pg.lsn, term=term, fence=o.fence)


def serve(o: Observation) -> list[AnyAction]:
    actions: list[AnyAction] = [RenewLeader(), publish(o, Role.PRIMARY)]
    history = _history(o)
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
    stale = _stale_slots(o)
    if stale:
        actions.append(DropSlots(slots=stale, reason="slots of members no longer configured"))
    return actions


# --- follow ---------------------------------------------------------------------------------------


def leader_unpublished(o: Observation) -> bool:
    return leader_address(o) is None


def wait_leader_address(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=f"leader {leader_name(o)} has not published its address yet")]


def following_as_primary(o: Observation) -> bool:
    return acting_primary(o)


def demote(o: Observation) -> list[AnyAction]:
    return [
        StopPostgres(mode="fast", then="rewind", reason=f"{leader_name(o)} holds the lease: demote this primary"),
        publish(o, Role.REPLICA, MemberState.STOPPED),
    ]


def _stalled(o: Observation) -> bool:
    since = o.memory.not_streaming_since
    return since is not None and o.now - since > o.settings.stream_failure_timeout


def following_and_not_answering(o: Observation) -> bool:
    return _not_answering(o) and not o.memory.acting_primary


def rejoin_unanswering(o: Observation) -> list[AnyAction]:
    """A standby with no WAL source may never become consistent: point it at the leader, then rewind."""
    name, address = leader_name(o) or "", leader_address(o)
    assert address is not None
    if o.memory.rewind_needed or _stalled(o):
        return [StopPostgres(then="rewind", reason=f"not answering: rejoin {name}"), publish(o, Role.REPLICA)]
    if o.pg.following != str(address):
        return [
            publish(o, Role.REPLICA),
            Follow(leader=name, address=address, sync_names=sync_names(o), reason="stream from the leader"),
        ]
    return [publish(o, Role.STARTING), Wait(reason="postgres is running but not answering yet")]


def reclone_due(o: Observation) -> bool:
    return o.memory.reclone_needed and leader_running(o) and o.now >= o.memory.retry_rewind_at


def reclone(o: Observation) -> list[AnyAction]:
    name, address = leader_name(o) or "", leader_address(o)
    assert address is not None
    return [
        publish(o, Role.CLONING, MemberState.STOPPED),
        Reclone(leader=name, address=address, sync_names=sync_names(o), reason=f"re-clone from {name}"),
    ]


def reclone_blocked(o: Observation) -> bool:
    return o.memory.reclone_needed


def wait_alarm(o: Observation) -> list[AnyAction]:
    why = o.memory.alarm or "waiting to re-clone from a running leader"
    return [publish(o, Role.REPLICA), Wait(reason=why)]


def _rewind_due(o: Observation) -> bool:
    return not o.pg.running and (o.memory.rewind_needed or o.pg.was_primary)


def rewind_due_but_leader_not_running(o: Observation) -> bool:
    return _rewind_due(o) and not leader_running(o)


def wait_leader_running(o: Observation) -> list[AnyAction]:
    name = leader_name(o)
    return [publish(o, Role.REPLICA), Wait(reason=f"waiting for leader {name} to run before rewinding")]


def rewind_backing_off(o: Observation) -> bool:
    return _rewind_due(o) and o.now < o.memory.retry_rewind_at


def wait_rewind_backoff(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=f"pg_rewind retry in {o.memory.retry_rewind_at - o.now:.1f}s")]


def rewind_due(o: Observation) -> bool:
    return _rewind_due(o)


def rewind(o: Observation) -> list[AnyAction]:
    name, address = leader_name(o) or "", leader_address(o)
    assert address is not None
    return [
        Rewind(leader=name, address=address, reason=f"rejoin {name}'s timeline with pg_rewind"),
        StartPostgres(standby=True, leader=address, sync_names=sync_names(o)),
        publish(o, Role.REPLICA),
    ]


def following_and_down(o: Observation) -> bool:
    return not o.pg.running


def start_replica(o: Observation) -> list[AnyAction]:
    name, address = leader_name(o), leader_address(o)
    return [
        StartPostgres(standby=True, leader=address, sync_names=sync_names(o), reason=f"start as a replica of {name}"),
        publish(o, Role.REPLICA),
    ]


def following_and_rewind_needed(o: Observation) -> bool:
    return o.memory.rewind_needed


def stop_to_rewind(o: Observation) -> list[AnyAction]:
    return [StopPostgres(then="rewind", reason=f"rejoin {leader_name(o)} through pg_rewind"), publish(o, Role.REPLICA)]


def wal_source_lost(o: Observation) -> bool:
    return o.pg.wal_source_lost and leader_running(o)


def stop_to_reclone(o: Observation) -> list[AnyAction]:
    return [
        StopPostgres(then="reclone", reason="the leader no longer has the WAL this replica needs: re-clone"),
        publish(o, Role.REPLICA, MemberState.STOPPED),
    ]


def following_elsewhere(o: Observation) -> bool:
    return o.pg.following != str(leader_address(o))


def repoint(o: Observation) -> list[AnyAction]:
    name, address = leader_name(o) or "", leader_address(o)
    assert address is not None
    return [
        publish(o, Role.REPLICA),
        Follow(leader=name, address=address, sync_names=sync_names(o), reason=f"follow the new leader {name}"),
    ]


def stream_stalled(o: Observation) -> bool:
    return not o.pg.streaming and _stalled(o) and leader_running(o)


def following(o: Observation) -> bool:
    return True


def stream(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), EnsureSlots(names=o.others, advance=_slot_advances(o))]


# --- elect ----------------------------------------------------------------------------------------


def forced_failover_to_me(o: Observation) -> bool:
    request = o.cluster.switchover if o.cluster else None
    return request is not None and request.force and request.target == o.me and o.pg.running


def forced_promote(o: Observation) -> list[AnyAction]:
    return [
        AcquireLeader(reason="forced failover to this node"),
        record_promotion(o),
        ClearSwitchover(),
        *sync_plan(o),
        Promote(sync_names=sync_names(o), within=o.settings.fence_deadline, reason="forced failover"),
        publish(o, Role.PRIMARY),
    ]


def superseded_primary(o: Observation) -> bool:
    """Running as a primary, but the durable history says another node led after this one."""
    history = o.cluster.history if o.cluster else None
    return acting_primary(o) and history is not None and history.leader != o.me


def primary_without_leader(o: Observation) -> bool:
    return acting_primary(o)


def reclaim(o: Observation) -> list[AnyAction]:
    return [AcquireLeader(reason="running as primary with no leader: reclaim the lease"), publish(o, Role.PRIMARY)]


def down_without_leader(o: Observation) -> bool:
    return not o.pg.running


def start_readonly(o: Observation) -> list[AnyAction]:
    return [
        StartPostgres(
            standby=True,
            leader=None,
            sync_names=sync_names(o),
            reason="no leader: start read-only to take part in the election",
        )
    ]


def not_answering(o: Observation) -> bool:
    return _not_answering(o)


def wait_starting(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.STARTING), Wait(reason="postgres is running but not answering yet")]


def still_attached(o: Observation) -> bool:
    return o.pg.following is not None


def detach(o: Observation) -> list[AnyAction]:
    return [
        publish(o, Role.REPLICA),
        Follow(leader="", address=None, sync_names=sync_names(o), reason="no leader: stop receiving WAL"),
    ]


def old_leader_may_write(o: Observation) -> bool:
    return election.old_leader_may_write(o) is not None


def wait_old_leader(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=election.old_leader_may_write(o) or "")]


def ineligible(o: Observation) -> bool:
    return election.eligibility(o) is not None


def wait_ineligible(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=election.eligibility(o) or "")]


def always(o: Observation) -> bool:
    return True


def elect_and_promote(o: Observation) -> list[AnyAction]:
    return [
        AcquireLeader(reason="no leader: this node is the best eligible candidate"),
        record_promotion(o),
        *sync_plan(o),
        Promote(sync_names=sync_names(o), within=o.settings.fence_deadline, reason="failover"),
        publish(o, Role.PRIMARY),
    ]


def record_promotion(o: Observation) -> RecordHistory:
    """Before pg_promote: the durable history names this node, so no later election forgets it led."""
    timeline = (o.pg.timeline or 0) + 1 if o.pg.in_recovery else o.pg.timeline
    history = LeaderHistory(leader=o.me, address=o.address, timeline=timeline, lsn=o.pg.lsn, fence=o.fence)
    return RecordHistory(history=history, reason="record this node as the last leader before promoting")


# --- before I/O, and at shutdown --------------------------------------------------------------


def lease_overdue_before_io(o: Observation) -> bool:
    """After a pause the lease may have moved while this node slept: asking the store first would let
    clients write to two primaries meanwhile. (The in-postgres fence already refuses those commits.)"""
    last = o.memory.last_renewal
    limit = o.settings.ttl - o.settings.dcs_timeout
    return o.memory.acting_primary and last is not None and o.now - last > limit and o.fence is not FenceKind.EXTENSION


def stop_node(o: Observation) -> list[AnyAction]:
    actions: list[AnyAction] = [StopPostgres(mode="fast", reason="agent shutting down")]
    if i_lead(o):
        actions.append(ReleaseLeader(reason="agent shutting down: give the lease back at once"))
    actions.append(DeleteMember())
    return actions
