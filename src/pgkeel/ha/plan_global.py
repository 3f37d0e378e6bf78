"""Predicates and plans of the global, bootstrap, pre-I/O and shutdown sections of the rule table (pure).

A predicate is evaluated only when every rule above it did not match, so each states just what sets its
case apart; a plan returns the actions in the order they must happen."""

from __future__ import annotations

from pgkeel.ha.actions import (
    AnyAction,
    Bootstrap,
    ClaimInitialize,
    ClearRestoreMark,
    ClearStaleClaim,
    CloneFrom,
    ConfirmFailsafe,
    DeleteMember,
    Fence,
    Refuse,
    ReleaseLeader,
    RenewLeader,
    SetAside,
    StopPostgres,
    Wait,
)
from pgkeel.ha.facts import (
    acting_primary,
    fence_due,
    foreign_reason,
    i_lead,
    leader_address,
    leader_name,
    leader_running,
    publish,
)
from pgkeel.ha.model import Observation
from pgkeel.ha.plan_lead import leading_and_down_too_long
from pgkeel.ha.records import (
    BOOTSTRAP_PLACEHOLDER,
    FenceKind,
    MemberState,
    Role,
)
from pgkeel.ha.sync import sync_names

BOOTSTRAP_CLAIM_TIMEOUT = 60.0  # a claim older than this with no lease behind it belongs to a dead bootstrap


# --- global ---------------------------------------------------------------------------------------


def refused(o: Observation) -> bool:
    return o.memory.refused is not None


def refuse(o: Observation) -> list[AnyAction]:
    return [Refuse(reason=o.memory.refused or "refused")]


def failsafe_due(o: Observation) -> bool:
    """The store is unreachable and this primary held the lease: ask the others to promise not to lead.

    Before the fence is due, a round keeps writes going; after it (a round failed), only the in-postgres
    fence has held the line meanwhile, so a later round may resume writes — a watchdog or restart fence
    stops postgres instead (the next rule). Safe either way: see pgkeel.ha.failsafe."""
    if o.cluster is not None or not o.settings.failsafe or not acting_primary(o) or o.memory.last_renewal is None:
        return False
    return not fence_due(o) or o.fence is FenceKind.EXTENSION


def confirm_failsafe(o: Observation) -> list[AnyAction]:
    others = o.others
    why = f"coordination store unreachable: ask {', '.join(others)} to promise not to lead" if others else (
        "coordination store unreachable: the only member keeps serving"
    )
    return [ConfirmFailsafe(members=others, reason=why)]


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
    if o.pg.restored:  # never initdb over restored data: found the cluster on it again
        return [Bootstrap(placeholder=placeholder, reuse_claim=True, restored=True,
                          reason="our bootstrap from restored data died midway: run it again")]
    if o.pg.has_data and o.pg.system_identifier and o.pg.running and o.pg.in_recovery is False:
        return [Bootstrap(placeholder=placeholder, reuse_claim=True, reason="finish our bootstrap: record the cluster")]
    return [Bootstrap(placeholder=placeholder, reuse_claim=True, reason="our bootstrap died midway: run it again")]


def failed_bootstrap_data(o: Observation) -> bool:
    """Data our own bootstrap left before it died, while another node's cluster is now recorded in the store."""
    init = o.cluster.initialize if o.cluster else None
    return (
        o.pg.has_data
        and o.pg.unfinished_bootstrap
        and init is not None
        and not init.startswith(BOOTSTRAP_PLACEHOLDER)
        and init != o.pg.system_identifier
    )


def set_aside_failed_bootstrap(o: Observation) -> list[AnyAction]:
    return [
        SetAside(
            reason="this node's bootstrap died before its cluster was recorded and another node's cluster "
            "now is: keep the never-used data aside, then clone"
        ),
    ]


def foreign_data(o: Observation) -> bool:
    return foreign_reason(o) is not None


def refuse_foreign(o: Observation) -> list[AnyAction]:
    why = foreign_reason(o) or "foreign data"
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


def start_backing_off(o: Observation) -> bool:
    """A failed start waits its backoff out; a leader that stays down past restart_timeout still hands over."""
    pg = o.pg
    return pg.has_data and not pg.running and o.now < o.memory.retry_start_at and not leading_and_down_too_long(o)


def wait_start_backoff(o: Observation) -> list[AnyAction]:
    wait = f"postgres failed to start ({o.memory.failed_starts}x): retrying in {o.memory.retry_start_at - o.now:.1f}s"
    if i_lead(o):
        return [RenewLeader(), Wait(reason=wait)]
    return [publish(o, Role.STOPPED), Wait(reason=wait)]


# --- bootstrap -----------------------------------------------------------------------------------


def bootstrap_backing_off(o: Observation) -> bool:
    return not o.pg.has_data and o.now < o.memory.retry_bootstrap_at


def wait_bootstrap_backoff(o: Observation) -> list[AnyAction]:
    wait = o.memory.retry_bootstrap_at - o.now
    return [publish(o, Role.UNINITIALIZED), Wait(reason=f"bootstrap failed: retrying in {wait:.1f}s")]


def no_cluster_yet(o: Observation) -> bool:
    return not o.pg.has_data and o.cluster is not None and o.cluster.initialize is None


def restored_and_no_cluster_yet(o: Observation) -> bool:
    """Data restored from a backup for this new cluster, and the store records no cluster and no claim."""
    return (
        o.pg.has_data
        and o.pg.restored
        and o.cluster is not None
        and o.cluster.initialize is None
        and o.cluster.bootstrapping is None
    )


def found_on_restored_data(o: Observation) -> list[AnyAction]:
    return [
        Bootstrap(
            placeholder=BOOTSTRAP_PLACEHOLDER + o.me,
            restored=True,
            reason="no cluster yet and this node holds data restored from a backup: found the cluster on it",
        )
    ]


def restore_recorded(o: Observation) -> bool:
    """Our restored data is the recorded cluster now (the marker outlived the bootstrap that recorded it)."""
    init = o.cluster.initialize if o.cluster else None
    return o.pg.restored and init is not None and init == o.pg.system_identifier


def clear_restore_mark(o: Observation) -> list[AnyAction]:
    return [ClearRestoreMark(reason="the cluster founded on our restored data is recorded: drop the marker")]


def no_cluster_yet_restore_elsewhere(o: Observation) -> bool:
    """spec.bootstrap.fromBackup: a node without data never initdb's; the member with restored data founds it."""
    return no_cluster_yet(o) and o.settings.bootstrap_from_backup


def wait_restore(o: Observation) -> list[AnyAction]:
    return [publish(o, Role.UNINITIALIZED),
            Wait(reason="spec.bootstrap.fromBackup: waiting for the member with restored data to found the cluster")]


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
