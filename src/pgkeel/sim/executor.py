"""What each action does in the simulated world, modelled on pgkeel.ha.execute.Executor.

`perform` returns the Outcome the real handler would, and how long the action took (true
seconds), or a `Later` when the action has a step that can be interrupted (bootstrap).
Invariant, as in the real executor: a handler decides nothing; every successful acquire or renew
arms the node's fence until sent_at + fence_deadline, and only ReleaseLeader, Fence and HandOver
(and an agent's start) disarm it. Data is never removed: a non-empty directory goes aside (one
slot per node) or the clone is Blocked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, assert_never

from pgkeel.ha.actions import (
    AcquireLeader,
    AnyAction,
    Bootstrap,
    Checkpoint,
    ClaimInitialize,
    ClearRestoreMark,
    ClearStaleClaim,
    ClearSwitchover,
    CloneFrom,
    ConfirmFailsafe,
    ConfirmReceived,
    DeleteMember,
    DropSlots,
    EnsureSlots,
    Fence,
    Follow,
    HandOver,
    Promote,
    Publish,
    Reclone,
    RecordHistory,
    Refuse,
    ReleaseLeader,
    RenewLeader,
    Rewind,
    SetAside,
    SetSyncNames,
    StartPostgres,
    StopPostgres,
    Wait,
    WriteSyncRecord,
)
from pgkeel.ha.model import Blocked, Done, Failed, LeaseHeld, Outcome, Result, Rewound, Started, SyncNamesSet
from pgkeel.ha.records import Address, MemberRecord, MemberState, Role
from pgkeel.instance import RewindOutcome, slot_name_for
from pgkeel.sim.pg import SLOT_KEEP, Slot, fork_point, is_prefix
from pgkeel.sim.world import StoreError

if TYPE_CHECKING:
    from pgkeel.sim.agent import SimAgent

START_WAIT = 2.0


@dataclass(frozen=True)
class Later:
    """The action goes on after `after` seconds with `rest` (a crash in between interrupts it)."""

    after: float
    rest: Callable[[], Step]


Step = tuple[Outcome, float] | Later


def perform(agent: SimAgent, action: AnyAction, done: list[Result]) -> Step:
    try:
        return _perform(agent, action, done)
    except StoreError as exc:
        return Failed(error=str(exc)), agent.world.settings.dcs_timeout


def _perform(a: SimAgent, action: AnyAction, done: list[Result]) -> Step:
    w, me, pg, s = a.world, a.name, a.node.pg, a.world.store
    ttl = w.settings.ttl
    lat = w.store_latency(me)
    match action:
        case AcquireLeader():
            if action.not_after is not None and w.local(me) > action.not_after:
                return Failed(error="the election's observation is too old to act on"), 0.0
            with a.node.promises.acquisition(w.local(me)) as refused:  # the agent's own check, as in Executor
                if refused is not None:
                    return Failed(error=refused), 0.0
            return lease(a, lambda: s.acquire(me, ttl, w.t)), lat
        case RenewLeader():
            return lease(a, lambda: s.renew(me, ttl, w.t)), lat
        case ConfirmFailsafe():
            return confirm_failsafe(a, action)
        case ReleaseLeader():
            pg.fence_armed = False
            a.holding = False
            ok = w.store_call(me, lambda: s.release(me, w.t))
            return (Done() if ok else Failed(error="not the holder")), lat
        case Promote():
            return promote(a, action, done), 0.1
        case Fence():
            pg.fence_armed = False
            a.holding = False
            a.stop("immediate")
            a.configure(standby=True, leader=None, sync=action.sync_names)
            recovery = a.start_postgres()
            return Done(), 0.05 + min(recovery, 5.0)
        case StartPostgres():
            return start(a, action.standby, action.leader, action.sync_names)
        case StopPostgres():
            a.stop(action.mode)
            return Done(), 0.1 if action.mode == "fast" else 0.02
        case Follow():
            if not pg.running:
                a.configure(standby=True, leader=action.address, sync=action.sync_names)
                return Failed(error="pg_ctl reload: no server running"), 0.01
            a.configure(standby=True, leader=action.address, sync=action.sync_names)
            pg.streaming, pg.received_from, pg.source_lost = False, None, False  # the walreceiver restarts
            w.release_waiters()
            return Done(), 0.01
        case Rewind():
            return rewind(a, action.address), 0.5
        case Bootstrap():
            return bootstrap(a, action)
        case ClearStaleClaim():
            ok = w.store_call(me, lambda: s.clear_initialize(action.placeholder))
            return (Done() if ok else Failed(error="claim changed")), lat
        case ClaimInitialize():
            ok = w.store_call(me, lambda: s.claim_initialize(action.system_identifier))
            return (Done() if ok else Failed(error="initialize key already taken")), lat
        case CloneFrom():
            return clone(a, action.address, action.sync_names)
        case Reclone():
            return clone(a, action.address, action.sync_names)
        case SetAside():
            a.stop("fast")
            if pg.has_data:
                if pg.asides >= 1:
                    return Blocked(error="an aside copy already exists: an operator must remove it"), 0.01
                pg.asides += 1
                w.log(f"{me} data directory moved aside (asides: {pg.asides})")
            pg.has_data = False
            return Done(), 0.05
        case WriteSyncRecord():
            ok = w.store_call(me, lambda: s.set_sync(action.record, action.expected_version))
            return (Done() if ok else Failed(error="sync record changed")), lat
        case SetSyncNames():
            return set_sync_names(a, action), 0.01
        case EnsureSlots():
            return ensure_slots(a, action), 0.01
        case DropSlots():
            for slot in action.slots:
                pg.slots.pop(slot, None)
            return Done(), 0.01
        case Checkpoint():
            return checkpoint(a, action.budget)
        case ConfirmReceived():
            return confirm_received(a, action)
        case HandOver():
            ok = w.store_call(me, lambda: s.take_over(me, action.target, ttl, w.t))
            if not ok:
                return Failed(error="the lease was not ours to hand over"), lat
            pg.fence_armed = False
            a.holding = False
            a.wake(action.target)
            return Done(), lat
        case ClearSwitchover():
            w.store_call(me, s.clear_switchover)
            return Done(), lat
        case Publish():
            w.store_call(me, lambda: s.set_member(action.record, w.settings.member_ttl, w.t))
            return Done(), lat
        case RecordHistory():
            ok = w.store_call(me, lambda: s.set_history(me, action.history, w.t))
            return (Done() if ok else Failed(error="not the lease holder")), lat
        case DeleteMember():
            w.store_call(me, lambda: s.delete_member(me))
            return Done(), lat
        case Refuse():
            record = MemberRecord(me, role=Role.REFUSED, state=MemberState.REFUSED)
            with contextlib.suppress(StoreError):
                w.store_call(me, lambda: s.set_member(record, w.settings.member_ttl, w.t))
            return Done(), lat
        case Wait() | ClearRestoreMark():  # the model has no restored data (spec.bootstrap.fromBackup)
            return Done(), 0.0
        case _:
            assert_never(action)


def lease(a: SimAgent, call: Callable[[], bool]) -> Outcome:
    sent = a.world.local(a.name)
    if not a.world.store_call(a.name, call):
        return Failed(error="lease not held")
    a.holding = True
    a.world.arm_fence(a.node, sent + a.world.settings.fence_deadline)
    return LeaseHeld(sent_at=sent)


def confirm_failsafe(a: SimAgent, action: ConfirmFailsafe) -> Step:
    """pgkeel.ha.execute.Executor._confirm_failsafe: a request reaches a peer's API only if the link works
    and its agent runs; the promise is made when it arrives, even if the answer is then lost."""
    w = a.world
    sent = w.local(a.name)
    refused, silent = 0, False
    for member in action.members:
        peer, node = w.agents.get(member), w.nodes.get(member)
        up = peer is not None and node is not None and peer.alive and not peer.paused
        up = up and node is not None and not node.paused and not node.down
        arrives = up and w.reach(a.name, member) and w.rng.random() >= w.config.probe_loss
        if not arrives or peer is None:
            refused, silent = refused + 1, True
            continue
        why = peer.failsafe_request(a.name)
        if not w.reach(member, a.name):  # promised, but the answer never comes back
            refused, silent = refused + 1, True
        elif why is not None:
            refused += 1
    took = w.settings.dcs_timeout if silent else 0.01
    if refused:
        return Failed(error=f"{refused} of {len(action.members)} members did not promise"), took
    w.arm_fence(a.node, sent + w.settings.fence_deadline)
    return LeaseHeld(sent_at=sent), took


def promote(a: SimAgent, action: Promote, done: list[Result]) -> Outcome:
    w, pg = a.world, a.node.pg
    sent = [r.sent_at for _, r in done if isinstance(r, LeaseHeld)]
    if not sent or w.local(a.name) - sent[-1] > action.within:
        return Failed(error="the lease may have lapsed since it was last confirmed: not promoting")
    if not w.answering(a.node):
        return Failed(error="postgres not answering")
    if not pg.in_recovery:
        return Done()
    a.configure(standby=True, leader=None, sync=action.sync_names)
    pg.promote(-w.new_id())
    a.configure(standby=False, leader=None, sync=action.sync_names)
    w.log(f"{a.name} promoted: timeline {pg.timeline} at lsn {pg.lsn}")
    return Done()


def start(a: SimAgent, standby: bool, leader: Address | None, sync: str) -> Step:
    pg = a.node.pg
    a.configure(standby=standby, leader=leader, sync=sync)
    if pg.running:
        return Started(ready=True), 0.01
    if not pg.has_data:
        return Failed(error="postgres exited during start: no data directory"), 0.1
    recovery = a.start_postgres()
    if recovery > START_WAIT:
        return Started(ready=False), START_WAIT
    return Started(ready=True), recovery


def rewind(a: SimAgent, address: Address) -> Outcome:
    w, pg = a.world, a.node.pg
    a.stop("fast")
    source = w.by_address(address)
    if source is None or not w.answering(source) or not w.connected(a.name, source.name):
        return Rewound(ok=False, error="could not connect to the source", result=RewindOutcome.UNREACHABLE)
    src = source.pg
    if src.in_recovery:
        return Rewound(ok=False, error="source server is in recovery", result=RewindOutcome.UNREACHABLE)
    if src.sysid != pg.sysid:
        why = "source and target clusters are from different systems"
        return Rewound(ok=False, error=why, result=RewindOutcome.FAILED)
    if is_prefix(pg.wal, src.wal) or pg.timeline == src.timeline:
        return Rewound(result=RewindOutcome.NOT_NEEDED)
    fork = fork_point(pg.wal, src.wal)
    if pg.lsn - fork > SLOT_KEEP:
        why = "could not find previous WAL record"
        return Rewound(ok=False, error=why, result=RewindOutcome.DIVERGED_BEYOND_REWIND)
    w.log(f"{a.name} rewound onto {source.name}: dropped {pg.lsn - fork} records after lsn {fork}")
    pg.wal = list(src.wal)
    pg.was_primary = False
    return Rewound(result=RewindOutcome.REWOUND)


def clone(a: SimAgent, address: Address, sync: str) -> Step:
    w, pg = a.world, a.node.pg
    source = w.by_address(address)
    if source is None or not w.answering(source) or not w.connected(a.name, source.name):
        return Failed(error="cannot reach the clone source"), 1.0
    a.stop("fast")
    if pg.has_data:
        if pg.asides >= 1:
            return Blocked(error="an aside copy already exists: an operator must remove it"), 0.01
        pg.asides += 1
        w.log(f"{a.name} data directory moved aside (asides: {pg.asides})")
    pg.has_data = False
    pg.copy_from(source.pg)
    slot = source.pg.slots.get(slot_name_for(a.name))
    if slot is not None and not slot.lost:
        slot.restart = pg.lsn
    outcome = start(a, True, address, sync)
    if isinstance(outcome, Later):
        return outcome
    return outcome[0], outcome[1] + 0.3


def bootstrap(a: SimAgent, action: Bootstrap) -> Step:
    w, pg, s, me = a.world, a.node.pg, a.world.store, a.name
    lat = w.store_latency(me)
    if not action.reuse_claim and not w.store_call(me, lambda: s.claim_initialize(action.placeholder)):
        return Failed(error="another node claimed the bootstrap"), lat
    if pg.has_data and pg.running:
        if not w.answering(a.node):
            return Failed(error="postgres not answering"), lat
        return Later(lat, lambda: finish_bootstrap(a, action, pg.sysid or ""))
    if not lease(a, lambda: s.acquire(me, w.settings.ttl, w.t)).ok:
        return Failed(error="could not take the lease"), lat

    def initdb() -> Step:
        if pg.has_data:
            if pg.asides >= 1:
                return Failed(error="an aside copy already exists"), 0.01  # AsideOccupied
            pg.asides += 1
            w.log(f"{me} partial bootstrap data moved aside (asides: {pg.asides})")
        pg.has_data, pg.sysid, pg.wal, pg.slots = True, f"sys-{w.new_id()}", [(1, -w.new_id())], {}
        a.configure(standby=False, leader=None, sync="")
        a.start_postgres(0.0)
        return Later(0.3, lambda: finish_bootstrap(a, action, pg.sysid or ""))

    return Later(lat + 0.7, initdb)


def finish_bootstrap(a: SimAgent, action: Bootstrap, sysid: str) -> Step:
    w = a.world
    try:
        ok = w.store_call(a.name, lambda: w.store.set_initialize(action.placeholder, sysid))
    except StoreError as exc:
        return Failed(error=str(exc)), w.settings.dcs_timeout
    return (Done() if ok else Failed(error="the bootstrap claim changed under us")), w.store_latency(a.name)


def set_sync_names(a: SimAgent, action: SetSyncNames) -> Outcome:
    w, pg = a.world, a.node.pg
    a.configure(standby=action.standby, leader=None, sync=action.names)
    if pg.running:
        pg.streaming, pg.received_from = (pg.streaming, pg.received_from) if pg.following else (False, None)
    w.release_waiters()
    if action.standby:
        return SyncNamesSet(lsn=None)
    if not w.answering(a.node):
        return Failed(error="postgres not answering")
    return SyncNamesSet(lsn=pg.lsn)


def ensure_slots(a: SimAgent, action: EnsureSlots) -> Outcome:
    w, pg = a.world, a.node.pg
    if not pg.running:
        return Done()
    if not w.answering(a.node):
        return Failed(error="postgres not answering")
    for name in action.names:
        pg.slots.setdefault(slot_name_for(name), Slot(pg.lsn))
    for name, lsn in action.advance:
        slot = pg.slots.get(slot_name_for(name))
        if slot is not None and not slot.lost and lsn > slot.restart:
            slot.restart = min(lsn, pg.lsn)
    return Done()


def checkpoint(a: SimAgent, budget: float) -> Step:
    w, pg = a.world, a.node.pg
    if pg.checkpoint_until <= w.t:
        pg.checkpoint_until = w.t + (pg.slow_checkpoint or 0.05)
        pg.slow_checkpoint = 0.0
    remaining = pg.checkpoint_until - w.t
    if remaining > budget:
        return Failed(error=f"checkpoint still running after {budget:g}s"), budget
    return Done(), remaining


def confirm_received(a: SimAgent, action: ConfirmReceived) -> Step:
    w, pg = a.world, a.node.pg
    if pg.running or not pg.clean_stop or not pg.was_primary:
        return Failed(error="not a clean shutdown: not handing over"), 0.01
    target = w.by_address(action.address)
    if target is None or not w.answering(target) or not w.connected(a.name, target.name):
        return Failed(error="cannot confirm the switchover target's position"), 2.0
    if is_prefix(pg.wal, target.pg.wal):
        return Done(), 0.01
    return Failed(error=f"{action.target} did not confirm WAL up to {pg.lsn}"), action.within
