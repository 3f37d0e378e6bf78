"""Carrying out a Decision: each action performed as told, one Outcome returned per action.

Invariants: a handler decides nothing — it performs its action with the data the action carries
and reports what happened; the plan stops at the first outcome that is not ok, so a lost race
or a failed step never runs the steps behind it. Every successful lease acquisition or renewal
extends the fence deadline postgres enforces; nothing else does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Protocol, assert_never

import httpx
import psycopg

from pgkeel.dcs import DCS, DCSError
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
from pgkeel.ha.clock import now
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.failsafe import Promises
from pgkeel.ha.failsafe_round import FailsafeRound
from pgkeel.ha.model import Blocked, Done, Failed, LeaseHeld, Outcome, Result, Rewound, Started, SyncNamesSet
from pgkeel.ha.peers import PeerProber
from pgkeel.ha.records import Address, FenceKind, HistoryEvent, MemberRecord, MemberState, Role, append_event
from pgkeel.instance import (
    AsideOccupied,
    CommandError,
    Instance,
    RewindIncomplete,
    RewindOutcome,
    format_lsn,
    parse_lsn,
    slot_name_for,
)

log = logging.getLogger("pgkeel.agent")

# The exceptions an action may raise when a part it talks to fails; anything else is a bug.
ACTION_ERRORS = (DCSError, CommandError, psycopg.Error, OSError, RuntimeError, TimeoutError, httpx.HTTPError)
START_WAIT = 2.0  # a start returns after this, ready or not, so a lease holder keeps renewing


class LeaseFence(Protocol):
    """The deadline postgres itself enforces (pgkeel_fence), or the watchdog that stands in for it."""

    @property
    def kind(self) -> FenceKind: ...

    def arm_until(self, deadline: float) -> None: ...

    def disarm(self) -> None: ...


class Executor:
    def __init__(
        self,
        config: AgentConfig,
        dcs: DCS,
        instance: Instance,
        prober: PeerProber,
        fence: LeaseFence,
        promises: Promises | None = None,
        peer_urls: Callable[[], dict[str, str | None]] | None = None,
    ) -> None:
        self.config = config
        self.dcs = dcs
        self.instance = instance
        self.prober = prober
        self.fence = fence
        self.promises = promises or Promises(None, config.ha.ttl, now())
        self.peer_urls = peer_urls or dict
        self.failsafe_round = FailsafeRound(config)
        self.failsafe_refusals: dict[str, str] = {}  # the last round's members that did not promise, and why
        self.long_action: str | None = None  # set while a clone or rewind runs: the loop is busy, not hung
        self._checkpoint: threading.Thread | None = None

    def run(self, actions: tuple[AnyAction, ...]) -> list[Result]:
        results: list[Result] = []
        for action in actions:
            self.long_action = action.kind if isinstance(action, Bootstrap | CloneFrom | Reclone | Rewind) else None
            try:
                outcome = self.perform(action, results)
            except ACTION_ERRORS as exc:
                log.error("%s failed: %s", action.kind, exc)
                outcome = Failed(error=str(exc))
            finally:
                self.long_action = None
            results.append((action, outcome))
            if not outcome.ok:
                if outcome.error:
                    log.info("%s did not succeed (%s); skipping the rest of this plan", action.kind, outcome.error)
                return results
        return results

    def perform(self, action: AnyAction, done: list[Result]) -> Outcome:
        match action:
            case AcquireLeader():
                if action.not_after is not None and now() > action.not_after:
                    return Failed(error="the election's observation is too old to act on: observing again")
                with self.promises.acquisition(now()) as refused:
                    if refused is not None:
                        return Failed(error=refused)
                    return self._lease(self.dcs.acquire_leader)
            case RenewLeader():
                return self._lease(self.dcs.renew_leader)
            case ConfirmFailsafe():
                return self._confirm_failsafe(action)
            case ReleaseLeader():
                self.fence.disarm()
                self.promises.holding = False
                return Done() if self.dcs.release_leader(self.config.name) else Failed(error="not the holder")
            case Promote():
                return self._promote(action, done)
            case Fence():
                return self._fence(action)
            case StartPostgres():
                return self._start(action.standby, action.leader, action.sync_names)
            case StopPostgres():
                self.instance.stop(action.mode, timeout=action.escalate_after)
                return Done()
            case Follow():
                return self._follow(action)
            case Rewind():
                return self._rewind(action)
            case Bootstrap():
                return self._bootstrap(action)
            case ClearStaleClaim():
                return Done() if self.dcs.clear_initialize(action.placeholder) else Failed(error="claim changed")
            case ClaimInitialize():
                won = self.dcs.initialize(action.system_identifier)
                log.info("initialize key %s (%s)", "claimed" if won else "already taken", action.system_identifier)
                return Done() if won else Failed(error="initialize key already taken")
            case CloneFrom():
                return self._clone(action.address, action.sync_names, "the directory held no cluster")
            case Reclone():
                return self._clone(action.address, action.sync_names, action.reason or "re-clone")
            case ClearRestoreMark():
                self.instance.clear_restore_mark()
                return Done()
            case SetAside():
                self.instance.stop("fast")
                try:
                    log.warning("data directory kept at %s", self.instance.move_datadir_aside(action.reason))
                except AsideOccupied as exc:
                    return Blocked(error=str(exc))
                self.instance.clear_bootstrap_mark()
                return Done()
            case WriteSyncRecord():
                ok = self.dcs.set_sync(action.record.to_json(), action.expected_version)
                return Done() if ok else Failed(error="sync record changed: re-read next loop")
            case SetSyncNames():
                return self._set_sync_names(action)
            case EnsureSlots():
                return self._ensure_slots(action)
            case DropSlots():
                for slot in action.slots:
                    self.instance.drop_slot(slot)
                    log.info("dropped replication slot %s of a member no longer configured", slot)
                return Done()
            case Checkpoint():
                return self._bounded_checkpoint(action.budget)
            case ConfirmReceived():
                return self._confirm_received(action)
            case HandOver():
                return self._hand_over(action)
            case ClearSwitchover():
                self.dcs.clear_switchover()
                return Done()
            case Publish():
                self.dcs.set_member(self.config.name, self._with_pids(action.record), self.config.ha.member_ttl)
                return Done()
            case RecordHistory():
                ok = self.dcs.set_history(self.config.name, action.history.to_json())
                return Done() if ok else Failed(error="not the lease holder")
            case DeleteMember():
                self.dcs.delete_member(self.config.name)
                return Done()
            case Refuse():
                with contextlib.suppress(DCSError):
                    record = MemberRecord(self.config.name, role=Role.REFUSED, state=MemberState.REFUSED)
                    self.dcs.set_member(self.config.name, self._with_pids(record), self.config.ha.member_ttl)
                return Done()
            case Wait():
                return Done()
            case _:
                assert_never(action)

    # --- the lease ------------------------------------------------------------------------------
    def _lease(self, call: Callable[[str, float], bool]) -> Outcome:
        sent = now()
        if not call(self.config.name, self.config.ha.ttl):
            return Failed(error="lease not held")
        # The store keeps the lease until at least sent + ttl; postgres refuses commits from sent + fence_deadline.
        self.promises.holding = True
        self.fence.arm_until(sent + self.config.ha.fence_deadline)
        return LeaseHeld(sent_at=sent)

    def _confirm_failsafe(self, action: ConfirmFailsafe) -> Outcome:
        """Every other member promised, each from the moment our request reached it, not to lead for a ttl:
        nobody can lead before sent + ttl, so the fence may run to sent + fence_deadline (pgkeel.ha.failsafe)."""
        sent = now()
        answers = self.failsafe_round.ask(self.peer_urls(), action.members)
        refused = {m: why for m, why in answers.items() if why is not None}
        if refused != self.failsafe_refusals:
            for m, why in sorted(refused.items()):
                log.warning("failsafe: %s did not promise (%s): writes stop at the fence deadline", m, why)
            if not refused:
                log.warning("failsafe: every member promised not to lead: serving writes without the store")
        self.failsafe_refusals = refused
        if refused:
            return Failed(error=f"{len(refused)} of {len(action.members)} members did not promise")
        self.fence.arm_until(sent + self.config.ha.fence_deadline)
        return LeaseHeld(sent_at=sent)

    def _promote(self, action: Promote, done: list[Result]) -> Outcome:
        sent = [r.sent_at for _, r in done if isinstance(r, LeaseHeld)]
        if not sent or now() - sent[-1] > action.within:
            return Failed(error="the lease may have lapsed since it was last confirmed: not promoting")
        inst = self.instance
        if not inst.status().in_recovery:
            return Done()  # already a primary (an earlier, interrupted loop)
        # Writes must wait for the quorum from the first commit on the new timeline.
        inst.configure(standby=True, leader=None, sync_standby_names=action.sync_names)
        inst.reload()
        inst.promote()
        inst.configure(standby=False, leader=None, sync_standby_names=action.sync_names)
        inst.reload()
        log.info("promoted %s", self.config.name)
        if action.event is not None:
            self._record_event(action.event)
        # pg_rewind reads the source's timeline from its control file, which a promotion updates
        # only at the next checkpoint: force one now (in the background) so old primaries can rejoin.
        self._start_checkpoint()
        return Done()

    def _record_event(self, event: HistoryEvent) -> None:
        """Append the change of primary to the store's history (for operators): best effort, never fatal."""
        for _ in range(3):
            try:
                current = self.dcs.view().values.get("events")
                value = append_event(current.value if current else None, event)
                if self.dcs.set_value("events", value, current.version if current else 0):
                    return
            except DCSError as exc:
                log.warning("could not record the change of primary in the store's history: %s", exc)
                return
        log.warning("could not record the change of primary in the store's history: it kept changing")

    def _fence(self, action: Fence) -> Outcome:
        self.fence.disarm()
        self.promises.holding = False
        inst = self.instance
        inst.stop("immediate", timeout=5.0)  # then SIGKILL: fencing must not wait on a stuck child
        inst.configure(standby=True, leader=None, sync_standby_names=action.sync_names)
        with contextlib.suppress(TimeoutError):
            # a crashed primary restarted without a WAL source may never become consistent; it
            # serves no writes either way, and a later loop rejoins it to the leader
            inst.start(timeout=5.0)
        return Done()

    # --- postgres --------------------------------------------------------------------------------
    def _start(self, standby: bool, leader: Address | None, sync_names: str) -> Outcome:
        inst = self.instance
        if standby:
            self.fence.disarm()  # a standby holds no lease; an armed, expired file would get it killed
        address = (leader.host, leader.port) if leader else None
        inst.configure(standby=standby, leader=address, sync_standby_names=sync_names)
        try:
            # Short: a lease holder's loop must keep renewing while postgres replays WAL.
            inst.start(timeout=min(START_WAIT, self.config.ha.fence_deadline / 2))
        except TimeoutError:
            return Started(ready=False)  # still starting (crash recovery): the loop keeps renewing meanwhile
        except RewindIncomplete as exc:
            return Rewound(ok=False, error=str(exc), result=RewindOutcome.INTERRUPTED)
        except RuntimeError as exc:
            return Failed(error=str(exc))
        return Started(ready=True)

    def _follow(self, action: Follow) -> Outcome:
        address = (action.address.host, action.address.port) if action.address else None
        self.instance.configure(standby=True, leader=address, sync_standby_names=action.sync_names)
        self.instance.reload()
        return Done()

    def _rewind(self, action: Rewind) -> Outcome:
        inst = self.instance
        inst.stop("fast")
        result = inst.try_rewind(action.address.host, action.address.port)
        log.info("pg_rewind against %s: %s (%s)", action.leader, result.outcome, result.reason)
        return Rewound(ok=result.ok, error=None if result.ok else result.reason, result=result.outcome)

    def _clone(self, address: Address, sync_names: str, why: str) -> Outcome:
        inst = self.instance
        space = inst.clone_space(address.host, address.port)
        if not space.fits:
            return Blocked(error=space.explain())
        inst.stop("fast")
        if not inst.data_dir_empty():
            try:
                aside = inst.move_datadir_aside(why)
            except AsideOccupied as exc:
                return Blocked(error=str(exc))
            log.warning("old data directory kept at %s", aside)
        try:
            inst.basebackup(address.host, address.port, use_slot=True)
        except CommandError as exc:
            if "replication slot" not in str(exc):
                raise
            inst.remove_empty_datadir()
            inst.basebackup(address.host, address.port, use_slot=False)
        return self._start(True, address, sync_names)

    def _bootstrap(self, action: Bootstrap) -> Outcome:
        me, inst = self.config.name, self.instance
        if not action.reuse_claim and not self.dcs.initialize(action.placeholder):
            return Failed(error="another node claimed the bootstrap")
        if action.restored:
            return self._found_on_restored_data(action)
        if inst.has_data() and inst.is_running():
            sysid = inst.status().system_identifier  # our own bootstrap got this far before it died
        else:
            if self._lease(self.dcs.acquire_leader).ok is False:
                return Failed(error="could not take the lease")
            inst.mark_bootstrap()  # until the store records this cluster, its data is known to be ours, unused
            try:
                if not inst.data_dir_empty():
                    try:
                        log.warning("partial bootstrap data kept at %s", inst.move_datadir_aside("partial bootstrap"))
                    except AsideOccupied as exc:
                        return Blocked(error=str(exc))
                inst.initdb()
                inst.configure(standby=False, leader=None, sync_standby_names="")
                inst.start()
                # initdb and the first start take a while: renew (and re-arm the fence) before writing. On a
                # slow machine the lease may have lapsed meanwhile; nobody else can lead without data, so retake it.
                if not (self._lease(self.dcs.renew_leader).ok or self._lease(self.dcs.acquire_leader).ok):
                    raise RuntimeError("lost the lease during bootstrap")
                inst.create_replication_role()
                sysid = inst.status().system_identifier
            except ACTION_ERRORS as exc:
                log.exception("bootstrap failed; releasing the initialize key")
                inst.stop("immediate")
                if inst.has_data():
                    # It never served anything, but data is never deleted: keep it aside.
                    with contextlib.suppress(OSError, AsideOccupied):
                        aside = inst.move_datadir_aside("failed bootstrap")
                        log.warning("failed bootstrap's data directory kept at %s", aside)
                with contextlib.suppress(DCSError):
                    self.dcs.clear_initialize(action.placeholder)
                    self.dcs.release_leader(me)
                return Failed(error=str(exc))
        if not self.dcs.set_initialize(action.placeholder, sysid):
            return Failed(error="the bootstrap claim changed under us")
        inst.clear_bootstrap_mark()
        log.info("bootstrapped cluster %s (system identifier %s)", self.config.scope, sysid)
        return Done()

    def _found_on_restored_data(self, action: Bootstrap) -> Outcome:
        """Lead on the restored data (already promoted by the restore) and record it as the cluster. Nothing
        here moves or replaces that data: a failure keeps the claim for the next try (resume_bootstrap)."""
        inst = self.instance
        if self._lease(self.dcs.acquire_leader).ok is False:
            return Failed(error="could not take the lease")
        if not inst.is_running():
            inst.configure(standby=False, leader=None, sync_standby_names="")
            inst.start()
        if not (self._lease(self.dcs.renew_leader).ok or self._lease(self.dcs.acquire_leader).ok):
            return Failed(error="lost the lease while starting the restored data")
        status = inst.status()
        if status.in_recovery:
            return Failed(error="the restored data is still in recovery: the restore did not promote it")
        inst.create_replication_role()
        if not self.dcs.set_initialize(action.placeholder, status.system_identifier):
            return Failed(error="the bootstrap claim changed under us")
        inst.clear_restore_mark()
        log.info("founded cluster %s on restored data (system identifier %s, timeline %s)",
                 self.config.scope, status.system_identifier, status.timeline)
        return Done()

    def _set_sync_names(self, action: SetSyncNames) -> Outcome:
        inst = self.instance
        inst.configure(standby=action.standby, leader=None, sync_standby_names=action.names)
        inst.reload()
        if action.standby:
            return SyncNamesSet(lsn=None)
        # The position once the new rule is in effect: commits acknowledged earlier are all below it.
        with inst.new_connection() as conn:
            row = conn.execute("SELECT current_setting('synchronous_standby_names')").fetchone()
            if row is None or row[0] != action.names:
                return Failed(error="synchronous_standby_names not in effect yet")
            lsn_row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        return SyncNamesSet(lsn=parse_lsn(lsn_row[0]) if lsn_row else None)

    def _ensure_slots(self, action: EnsureSlots) -> Outcome:
        inst = self.instance
        if not inst.is_running():
            return Done()
        for slot in action.recreate:
            inst.drop_slot(slot)
            log.warning("replication slot %s had lost its WAL: made afresh", slot)
        current = inst.slots()
        for name in action.names:
            slot = slot_name_for(name)
            if slot not in current:
                inst.create_slot(slot)
        for name, lsn in action.advance:
            slot = slot_name_for(name)
            position = current.get(slot)
            if position is not None and lsn > position:
                with contextlib.suppress(psycopg.Error):
                    inst.advance_slot(slot, format_lsn(lsn))
        return Done()

    def _start_checkpoint(self) -> threading.Thread:
        def checkpoint() -> None:
            try:
                with self.instance.new_connection() as conn:  # own connection: Instance's is the loop's
                    conn.execute("SET statement_timeout = 0")  # a checkpoint may take longer than 5 s
                    conn.execute("CHECKPOINT")
            except psycopg.Error as exc:
                log.warning("checkpoint failed: %s", exc)

        thread = threading.Thread(target=checkpoint, name="pgkeel-checkpoint", daemon=True)
        thread.start()
        self._checkpoint = thread
        return thread

    def _bounded_checkpoint(self, budget: float) -> Outcome:
        """Checkpoint in the background, waiting at most `budget`: renewals must not starve behind it."""
        thread = self._checkpoint if self._checkpoint and self._checkpoint.is_alive() else self._start_checkpoint()
        thread.join(budget)
        if thread.is_alive():
            return Failed(error=f"checkpoint still running after {budget:g}s; the switchover retries next loop")
        return Done()

    # --- switchover --------------------------------------------------------------------------------
    def _confirm_received(self, action: ConfirmReceived) -> Outcome:
        control = self.instance.control_data()
        if control.state != "shut down":
            return Failed(error=f"control state is {control.state!r}, not a clean shutdown: not handing over")
        final = control.checkpoint_lsn
        deadline = now() + action.within
        try:
            with self.prober.connect(action.address, "switchover", timeout=2) as conn:
                while now() < deadline:
                    row = conn.execute("SELECT pg_last_wal_receive_lsn()::text").fetchone()
                    received = parse_lsn(row[0]) if row else None
                    if received is not None and received > final:
                        return Done()
                    threading.Event().wait(0.01)
        except psycopg.Error as exc:
            return Failed(error=f"cannot confirm the switchover target's position: {exc}")
        return Failed(error=f"{action.target} did not confirm WAL up to {format_lsn(final)}")

    def _hand_over(self, action: HandOver) -> Outcome:
        if not self.dcs.take_over_leader(self.config.name, action.target, self.config.ha.ttl):
            return Failed(error="the lease was not ours to hand over")
        self.fence.disarm()
        self.promises.holding = False
        if action.api_url:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{action.api_url}/wake", timeout=0.5, verify=self.config.api_verify)
        log.info("switchover: handed the lease to %s", action.target)
        return Done()

    def _with_pids(self, record: MemberRecord) -> dict[str, object]:
        data = record.to_json()
        data["postgres_pid"] = self.instance.postmaster_pid()
        data["agent_pid"] = os.getpid()
        return data


__all__ = ["ACTION_ERRORS", "Executor", "LeaseFence"]
