"""Facts derived from an Observation, shared by the plans of every section (pure)."""

from __future__ import annotations

from pgkeel.ha.actions import AcquireLeader, Publish, RecordHistory
from pgkeel.ha.model import Observation
from pgkeel.ha.records import (
    BOOTSTRAP_PLACEHOLDER,
    Address,
    EventKind,
    HistoryEvent,
    LeaderHistory,
    MemberRecord,
    MemberState,
    Role,
    SwitchoverRequest,
)
from pgkeel.instance import slot_name_for

# --- facts derived from the observation ------------------------------------------------------


def acting_primary(o: Observation) -> bool:
    """Postgres may accept writes: it runs as a primary, or its role is unknown after it was one."""
    pg = o.pg
    return pg.running and (pg.in_recovery is False or (pg.in_recovery is None and o.memory.acting_primary))


def fence_due(o: Observation) -> bool:
    last = o.memory.last_renewal
    return last is None or o.now - last > o.settings.fence_deadline


def acquire(o: Observation, reason: str) -> AcquireLeader:
    """AcquireLeader bounded by the age of this observation's store read (HASettings.election_freshness)."""
    read = o.store_read_at
    return AcquireLeader(not_after=None if read is None else read + o.settings.election_freshness, reason=reason)


def paused(o: Observation) -> bool:
    """Maintenance mode is in force: no automatic failover (an operator's switchover or forced failover still runs)."""
    pause = o.cluster.pause if o.cluster else None
    return pause is not None and pause.in_force(o.wall_now)


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


def due_switchover(o: Observation) -> SwitchoverRequest | None:
    """The recorded switchover request once it is due: a scheduled one waits for its time (wall clock)."""
    request = o.cluster.switchover if o.cluster else None
    return request if request is not None and request.due(o.wall_now) else None


def switchover_target(o: Observation) -> tuple[str, MemberRecord] | None:
    cluster = o.cluster
    request = due_switchover(o)
    if cluster is None or request is None or request.source not in (None, o.me) or request.target == o.me:
        return None
    # Without a named target the best replica is chosen among those that may be promoted automatically.
    names = [request.target] if request.target else [m for m in o.others if m not in o.settings.no_failover]
    best: tuple[int, str, MemberRecord] | None = None
    for name in names:
        record = cluster.members.get(name)
        if name is None or record is None or not record.streaming_replica or record.address is None:
            continue
        key = (record.lsn or 0, name)
        if best is None or key[0] > best[0] or (key[0] == best[0] and name < best[1]):
            best = (key[0], name, record)
    return (best[1], best[2]) if best else None


def slot_advances(o: Observation) -> tuple[tuple[str, int], ...]:
    """On a replica: the others' slots follow their published positions, never past our own."""
    if o.cluster is None or o.pg.lsn is None:
        return ()
    moves = []
    for name in o.others:
        record = o.cluster.members.get(name)
        if record is not None and record.lsn is not None:
            moves.append((name, min(record.lsn, o.pg.lsn)))
    return tuple(moves)


def stale_slots(o: Observation) -> tuple[str, ...]:
    """Our-style slots (named after members of this cluster) for members no longer configured."""
    prefixes = {slot_name_for(m).rsplit("_", 1)[0] for m in o.members}
    wanted = {slot_name_for(m) for m in o.others}
    stale = []
    for slot in sorted(o.pg.slots - wanted):
        head, _, tail = slot.rpartition("_")
        if head in prefixes and tail.isdigit() and slot != slot_name_for(o.me):
            stale.append(slot)
    return tuple(stale)


def role_unknown(o: Observation) -> bool:
    return o.pg.running and o.pg.in_recovery is None


def leader_history(o: Observation) -> LeaderHistory:
    term = o.cluster.leader.term if o.cluster and o.cluster.leader else None
    return LeaderHistory(leader=o.me, address=o.address, timeline=o.pg.timeline, lsn=o.pg.lsn, term=term, fence=o.fence)


def record_promotion(o: Observation) -> RecordHistory:
    """Before pg_promote: the durable history names this node, so no later election forgets it led."""
    timeline = (o.pg.timeline or 0) + 1 if o.pg.in_recovery else o.pg.timeline
    history = LeaderHistory(leader=o.me, address=o.address, timeline=timeline, lsn=o.pg.lsn, fence=o.fence)
    return RecordHistory(history=history, reason="record this node as the last leader before promoting")


def promotion_event(o: Observation, kind: EventKind) -> HistoryEvent:
    """The change of primary a promotion planned now makes, for `pgkeel history`."""
    history = o.cluster.history if o.cluster else None
    previous = history.leader if history is not None and history.leader != o.me else None
    if kind is EventKind.SWITCHOVER and previous is None:
        kind = EventKind.RESTORED  # the lease holder promotes its own data again (interrupted promotion)
    timeline = (o.pg.timeline or 0) + 1 if o.pg.in_recovery else o.pg.timeline
    return HistoryEvent(time=o.wall_now, kind=kind, leader=o.me, previous=previous, timeline=timeline, lsn=o.pg.lsn)


def always(o: Observation) -> bool:
    return True


def stalled(o: Observation) -> bool:
    since = o.memory.not_streaming_since
    return since is not None and o.now - since > o.settings.stream_failure_timeout


def rewind_wanted(o: Observation) -> bool:
    return not o.pg.running and (o.memory.rewind_needed or o.pg.was_primary)


def foreign_reason(o: Observation) -> str | None:
    init = o.cluster.initialize if o.cluster else None
    sysid = o.pg.system_identifier
    if not o.pg.has_data or not init or init.startswith(BOOTSTRAP_PLACEHOLDER) or sysid is None or sysid == init:
        return None
    if o.pg.unfinished_bootstrap:
        return None  # our own dead bootstrap's data, never used: set aside, not refused (plan_global)
    return (
        f"data directory belongs to another cluster (system identifier {sysid}, cluster has {init}); "
        "refusing to join. Move the data directory away to let this node clone the cluster."
    )
