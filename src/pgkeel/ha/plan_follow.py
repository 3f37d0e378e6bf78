"""Predicates and plans of the follow section: another node holds the lease (pure)."""

from __future__ import annotations

from pgkeel.ha.actions import (
    AnyAction,
    DropSlots,
    EnsureSlots,
    Follow,
    Reclone,
    Rewind,
    StartPostgres,
    StopPostgres,
    Wait,
)
from pgkeel.ha.facts import (
    acting_primary,
    leader_address,
    leader_name,
    leader_running,
    publish,
    rewind_wanted,
    role_unknown,
    slot_advances,
    stale_slots,
    stalled,
)
from pgkeel.ha.model import Observation
from pgkeel.ha.records import (
    MemberState,
    Role,
)
from pgkeel.ha.sync import sync_names

# --- follow ---------------------------------------------------------------------------------------


def leader_unpublished(o: Observation) -> bool:
    return leader_address(o) is None


def wait_leader_address(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=f"leader {leader_name(o)} has not published its address yet")]


def following_as_primary(o: Observation) -> bool:
    return acting_primary(o)


# A fast stop of a primary waits for its WAL senders to have the shutdown checkpoint confirmed; one
# cut off from its standbys (a partition) waits wal_sender_timeout (60 s) for each. A demoted
# primary holds no lease and is rewound next, so a short wait, then an immediate stop, is enough.
DEMOTE_ESCALATE_AFTER = 5.0


def demote(o: Observation) -> list[AnyAction]:
    return [
        StopPostgres(
            mode="fast",
            then="rewind",
            escalate_after=DEMOTE_ESCALATE_AFTER,
            reason=f"{leader_name(o)} holds the lease: demote this primary",
        ),
        publish(o, Role.REPLICA, MemberState.STOPPED),
    ]


def following_and_not_answering(o: Observation) -> bool:
    return role_unknown(o) and not o.memory.acting_primary


def rejoin_unanswering(o: Observation) -> list[AnyAction]:
    """A standby with no WAL source may never become consistent: point it at the leader, then rewind."""
    name, address = leader_name(o) or "", leader_address(o)
    assert address is not None
    if o.memory.rewind_needed or stalled(o):
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


def rewind_due_but_leader_not_running(o: Observation) -> bool:
    return rewind_wanted(o) and not leader_running(o)


def wait_leader_running(o: Observation) -> list[AnyAction]:
    name = leader_name(o)
    return [publish(o, Role.REPLICA), Wait(reason=f"waiting for leader {name} to run before rewinding")]


def rewind_backing_off(o: Observation) -> bool:
    return rewind_wanted(o) and o.now < o.memory.retry_rewind_at


def wait_rewind_backoff(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.REPLICA), Wait(reason=f"pg_rewind retry in {o.memory.retry_rewind_at - o.now:.1f}s")]


def rewind_due(o: Observation) -> bool:
    return rewind_wanted(o)


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
    return not o.pg.streaming and stalled(o) and leader_running(o)


def following(o: Observation) -> bool:
    return True


def stream(o: Observation) -> list[AnyAction]:
    actions: list[AnyAction] = [publish(o, Role.REPLICA), EnsureSlots(names=o.others, advance=slot_advances(o))]
    stale = stale_slots(o)  # a replica keeps slots for the others too (for when it is promoted): drop removed ones'
    if stale:
        actions.append(DropSlots(slots=stale, reason="slots of members no longer configured"))
    return actions
