"""Predicates and plans of the elect section: no one holds the lease (pure)."""

from __future__ import annotations

from pgkeel.ha import election
from pgkeel.ha.actions import AcquireLeader, AnyAction, ClearSwitchover, Follow, Promote, StartPostgres, Wait
from pgkeel.ha.facts import (
    acting_primary,
    publish,
    record_promotion,
    role_unknown,
)
from pgkeel.ha.model import Observation
from pgkeel.ha.records import (
    Role,
)
from pgkeel.ha.sync import sync_names, sync_plan

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


def ineligible(o: Observation) -> bool:
    return election.eligibility(o) is not None


def wait_ineligible(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=election.eligibility(o) or "")]


def elect_and_promote(o: Observation) -> list[AnyAction]:
    return [
        AcquireLeader(reason="no leader: this node is the best eligible candidate"),
        record_promotion(o),
        *sync_plan(o),
        Promote(sync_names=sync_names(o), within=o.settings.fence_deadline, reason="failover"),
        publish(o, Role.PRIMARY),
    ]
