"""Predicates and plans of the elect section: no one holds the lease (pure)."""

from __future__ import annotations

from pgkeel.ha import election
from pgkeel.ha.actions import AnyAction, ClearSwitchover, Follow, Promote, StartPostgres, Wait
from pgkeel.ha.facts import (
    acquire,
    acting_primary,
    promotion_event,
    publish,
    record_promotion,
    role_unknown,
)
from pgkeel.ha.model import Observation
from pgkeel.ha.records import (
    EventKind,
    Role,
)
from pgkeel.ha.sync import sync_names, sync_plan

# --- elect ----------------------------------------------------------------------------------------


def promised_not_to_lead(o: Observation) -> bool:
    """The last leader cannot reach the store and this node promised it not to lead (pgkeel.ha.failsafe):
    no acquisition, no detaching from its WAL (its synchronous commits need this node) until the promise ends."""
    return o.promised_until is not None and o.now < o.promised_until


def keep_promise(o: Observation) -> list[AnyAction]:
    left = (o.promised_until or o.now) - o.now
    history = o.cluster.history if o.cluster else None
    leader = history.leader if history else "the last leader"
    wait = Wait(reason=f"promised {leader} (it cannot reach the store) not to lead for {left:.1f}s more")
    if not o.pg.running and history is not None and history.address is not None:
        start = StartPostgres(
            standby=True, leader=history.address, sync_names=sync_names(o),
            reason=f"failsafe: start as a replica of {leader}, which keeps serving without the store",
        )
        return [publish(o, Role.REPLICA), start, wait]
    return [publish(o, Role.REPLICA), wait]


def forced_failover_to_me(o: Observation) -> bool:
    request = o.cluster.switchover if o.cluster else None
    return request is not None and request.force and request.target == o.me and o.pg.running


def forced_promote(o: Observation) -> list[AnyAction]:
    return [
        acquire(o, "forced failover to this node"),
        record_promotion(o),
        ClearSwitchover(),
        *sync_plan(o),
        Promote(
            sync_names=sync_names(o),
            within=o.settings.fence_deadline,
            event=promotion_event(o, EventKind.FORCED),
            reason="forced failover",
        ),
        publish(o, Role.PRIMARY),
    ]


def superseded_primary(o: Observation) -> bool:
    """Running as a primary, but the durable history says another node led after this one."""
    history = o.cluster.history if o.cluster else None
    return acting_primary(o) and history is not None and history.leader != o.me


def primary_without_leader(o: Observation) -> bool:
    return acting_primary(o)


def reclaim(o: Observation) -> list[AnyAction]:
    return [acquire(o, "running as primary with no leader: reclaim the lease"), publish(o, Role.PRIMARY)]


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
    return role_unknown(o)


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


def wait_paused(o: Observation) -> list[AnyAction]:
    pause = o.cluster.pause if o.cluster else None
    until = f" until {pause.until:.0f} (epoch)" if pause and pause.until is not None else ""
    return [
        publish(o, Role.REPLICA),
        Wait(reason=f"maintenance mode{until}: no automatic failover (`pgkeel resume` ends it; a forced "
             "failover still works)"),
    ]


def ineligible(o: Observation) -> bool:
    return election.eligibility(o) is not None


def wait_ineligible(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=election.eligibility(o) or "")]


def elect_and_promote(o: Observation) -> list[AnyAction]:
    return [
        acquire(o, "no leader: this node is the best eligible candidate"),
        record_promotion(o),
        *sync_plan(o),
        Promote(
            sync_names=sync_names(o),
            within=o.settings.fence_deadline,
            event=promotion_event(o, EventKind.FAILOVER),
            reason="failover",
        ),
        publish(o, Role.PRIMARY),
    ]
