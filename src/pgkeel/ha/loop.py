"""The node agent's loop: precheck → housekeeping → observe → decide → execute → remember → report.

Invariant: this module composes; it decides nothing. Every choice is made by the pure rule table
(pgkeel.ha.rules) and every change of memory by pgkeel.ha.memory.remember; the loop survives any
exception one iteration throws, and sleeps loop_wait between iterations unless woken.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pgkeel.backup.pgbackrest import PgBackRest
from pgkeel.backup.schedule_status import BackupScheduleStatus
from pgkeel.dcs import DCS
from pgkeel.ha import backup_record, clock, maintenance
from pgkeel.ha.actions import (
    ConfirmFailsafe,
    EnsureSlots,
    Publish,
    RecordHistory,
    RenewLeader,
    SetSyncNames,
    Wait,
    WriteSyncRecord,
)
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.execute import Executor
from pgkeel.ha.failsafe import Promises, refusal
from pgkeel.ha.fencing import NodeFence, deadline_file_for
from pgkeel.ha.housekeeping import Housekeeping
from pgkeel.ha.membership import current_members, known_members
from pgkeel.ha.memory import remember
from pgkeel.ha.model import Decision, LeaseHeld, Memory, Observation, PgState, ReinitRequest, RestartRequest
from pgkeel.ha.observe import Observer
from pgkeel.ha.peers import PeerProber
from pgkeel.ha.plan_reinit import ReinitRefused, reinit_refusal
from pgkeel.ha.plan_restart import RestartRefused, restart_refusal
from pgkeel.ha.records import ClusterState, Membership, Pause
from pgkeel.ha.rules import decide, precheck, shutdown
from pgkeel.ha.status import NodeStatus, TlsStatus, node_status
from pgkeel.ha.switchover_request import check_request, store_ttl
from pgkeel.instance import Instance

log = logging.getLogger("pgkeel.agent")

# Actions that repeat every loop: logged only when the plan changes (a failsafe round runs every loop of
# a store outage; the executor logs when the members' answers change).
QUIET_ACTIONS = (Publish, RenewLeader, ConfirmFailsafe, EnsureSlots, WriteSyncRecord, SetSyncNames, RecordHistory, Wait)


class Agent:
    def __init__(self, config: AgentConfig, dcs: DCS, fence: NodeFence, instance: Instance | None = None) -> None:
        self.config = config
        self.dcs = dcs
        self.fence = fence
        self.instance = instance or Instance(config.instance_config(fence.postgres_settings))
        prober = PeerProber(config)
        promise_file = deadline_file_for(config).with_name("pgkeel-failsafe-promise")
        self.promises = Promises(promise_file, config.ha.ttl, clock.now())  # survives an agent restart
        self.observer = Observer(config, dcs, self.instance, prober, self.promises)
        self.executor = Executor(config, dcs, self.instance, prober, fence, self.promises, self.observer.peer_urls)
        self.housekeeping = Housekeeping(config, self.instance, dcs)
        self.memory = Memory()  # replaced only by remember()
        self._restart: RestartRequest | None = None  # the last POST /restart accepted; the loop observes it
        self._reinit: ReinitRequest | None = None  # the last POST /reinit accepted; the loop observes it
        self.last: Observation | None = None  # the last full observation (for shutdown and precheck)
        self.last_decision: Decision | None = None
        self.last_loop_end: float | None = None  # monotonic; /liveness
        self.loop_duration = 0.0
        self._last_kinds: list[str] = []  # the previous plan's action kinds, to log changes only
        self._last_wait = ""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards _status: the API thread reads it
        self._status = NodeStatus(name=config.name, scope=config.scope, agent_pid=os.getpid())
        # the backup thread's view of the schedule, when it runs (pgkeel.agent.backups); shown in /status
        self.backup_status: Callable[[], BackupScheduleStatus | None] | None = None

    # --- the loop ---------------------------------------------------------------------------------
    def run_forever(self) -> None:
        c = self.config
        log.info("agent %s starting (scope %s, store %s, fence %s)", c.name, c.scope, c.dcs_url, self.fence.kind)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:  # the loop must survive anything one iteration throws
                log.exception("loop iteration failed")
            self.loop_duration = time.monotonic() - started
            self.last_loop_end = time.monotonic()
            self._wake.wait(max(0.0, c.ha.loop_wait - self.loop_duration))
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> Decision:
        self._precheck()
        self.housekeeping.run()
        with self._lock:
            restart, reinit = self._restart, self._reinit
        o = replace(self.observer.observe(self.memory, self.fence.kind, restart), reinit_request=reinit)
        decision = decide(o)
        self._log(decision)
        results = self.executor.run(decision.actions)
        self.memory = remember(o, decision, results)
        won = any(isinstance(r, LeaseHeld) for _, r in results)
        if o.cluster is not None and o.cluster.leader_name not in (None, o.me) and not won:
            self.promises.holding = False  # another node leads: whatever this one held is gone
        self.last, self.last_decision = o, decision
        self._report(o, decision)
        return decision

    def _precheck(self) -> None:
        """Before any I/O: a primary whose last renewal is nearly a TTL old stops (pgkeel.ha.rules.precheck)."""
        last_pg = self.last.pg if self.last is not None else PgState()
        o = self.observer.observation(self.memory, self.fence.kind, last_pg, None)
        decision = precheck(o)
        if decision is None:
            return
        log.warning("%s: %s", decision.rule, decision.reason)
        self.memory = remember(o, decision, self.executor.run(decision.actions))

    def shutdown(self) -> None:
        """Stop postgres, give the lease back, remove our record: each step tried even if one fails."""
        last = self.last
        if last is None:
            self.instance.stop("fast")
            return
        o = self.observer.observation(self.memory, self.fence.kind, last.pg, last.cluster)
        decision = shutdown(o)
        for action in decision.actions:
            self.executor.run((action,))
        self.fence.disarm()

    # --- reporting --------------------------------------------------------------------------------
    def _log(self, decision: Decision) -> None:
        kinds = [a.kind for a in decision.actions]
        if kinds != self._last_kinds or any(not isinstance(a, QUIET_ACTIONS) for a in decision.actions):
            for a in decision.actions:
                loud = not isinstance(a, QUIET_ACTIONS) or (isinstance(a, Wait) and a.reason != self._last_wait)
                if loud:
                    log.info("[%s] %s%s", decision.rule, a.kind, f": {a.reason}" if a.reason else "")
                if isinstance(a, Wait):
                    self._last_wait = a.reason
        self._last_kinds = kinds

    def _report(self, o: Observation, decision: Decision) -> None:
        status = node_status(
            o,
            decision,
            self.memory,
            scope=self.config.scope,
            last_status=self.observer.last_status,
            postgres_pid=self.instance.postmaster_pid(),
            fence_detail=self.fence.detail,
            asides=self.instance.asides(),
            tls=TlsStatus(enabled=self.config.tls_enabled, certificate_not_after=self.housekeeping.cert_not_after),
            loop_duration=self.loop_duration,
            agent_pid=os.getpid(),
            auto_conf_drift=self._auto_conf_drift(),
            archive=self.housekeeping.archive.status,
            backups=self.backup_status() if self.backup_status is not None else None,
        )
        with self._lock:
            self._status = status

    def _auto_conf_drift(self) -> list[str]:
        try:
            return self.instance.auto_conf_drift()
        except (OSError, UnicodeDecodeError):  # no data directory yet, or one being cloned
            return []

    # --- what the API asks (pgkeel.api.server.Node) ------------------------------------------------
    def status(self) -> NodeStatus:
        with self._lock:
            return self._status

    def loop_alive(self) -> bool:
        """The loop finished an iteration recently, or is inside a long action (clone, rewind)."""
        if self.executor.long_action is not None:
            return True
        last = self.last_loop_end
        ha = self.config.ha
        bound = max(10 * ha.loop_wait, 2 * ha.ttl) + 30  # + one slow postgres start
        return last is not None and time.monotonic() - last < bound

    def pause(self, until: float | None, reason: str | None, by: str | None) -> dict[str, Any]:
        """Maintenance mode from the next loop of every agent (pgkeel.ha.maintenance)."""
        pause = maintenance.set_pause(self.dcs, Pause(until=until, by=by, reason=reason))
        self.wake()
        return pause.to_json()

    def set_membership(self, members: list[str], sync_standbys: int) -> dict[str, Any]:
        """Record the members after a scaling (pgkeel.ha.membership); every agent follows from its next loop."""
        recorded = maintenance.set_membership(self.dcs, Membership(tuple(members), sync_standbys))
        self.wake()
        return recorded.to_json()

    def resume(self) -> bool:
        was_paused = maintenance.clear_pause(self.dcs)
        self.wake()
        return was_paused

    def history(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in maintenance.read_events(self.dcs)]

    def request_backup(self, kind: str, by: str | None) -> dict[str, Any]:
        """Queue an on-demand backup in the store; the leader's agent runs it (pgkeel.agent.backups)."""
        if self.config.backup is None:
            raise LookupError("this cluster has no spec.backup: add spec.backup.repositories to the document and "
                              "apply it (`pgkeel up`)")
        return backup_record.request_backup(self.dcs, kind, by).to_json()

    def repository(self) -> dict[str, Any]:
        """`pgbackrest info` of the cluster's first repository, as this node reads it (LookupError without
        spec.backup; BackupError when the repository cannot be read)."""
        job = self.config.backup
        if job is None:
            raise LookupError("this cluster has no spec.backup: add spec.backup.repositories to the document")
        return PgBackRest(job.config_file, job.stanza).info().as_dict()

    def backups(self) -> dict[str, Any]:
        """The store's backups record: requests waiting, the run under way, the latest results."""
        record, _ = backup_record.read_record(self.dcs)
        return record.to_json()

    def failsafe_promise(self, leader: str) -> dict[str, Any]:
        """POST /failsafe from the last leader, which cannot reach the store: promise not to lead for one ttl,
        or ValueError naming why not (pgkeel.ha.failsafe.refusal)."""
        c = self.config
        t = clock.now()
        last = self.last
        if last is None:  # not one loop yet: whether this node's own postgres runs as a primary is unknown
            raise ValueError("this agent has not observed its postgres yet")
        acting = self.memory.acting_primary or (last.pg.running and last.pg.in_recovery is not True)
        why = refusal(
            me=c.name,
            leader=leader,
            members=known_members(c.members, self.observer.last_view),
            view=self.observer.last_view,
            holding=self.promises.holding,
            acting_primary=acting,
            acquiring=False,
            remembered=self.promises.remembered,
        )
        promise = self.promises.grant(leader, t, why)
        log.debug("failsafe: promised %s not to lead for %.1fs", leader, promise.until - t)
        return {"member": c.name, "leader": promise.leader, "seconds": round(promise.until - t, 3)}

    def request_restart(self, in_place: bool = False) -> dict[str, Any]:
        """Accept a restart of this node's postgres, which the loop plans (pgkeel.ha.plan_restart); RestartRefused
        for the leader of several members unless `in_place`."""
        state = ClusterState.decode(self.dcs.view())
        members = list(current_members(self.config.members, state))
        reason = restart_refusal(state, self.config.name, members, in_place)
        if reason is not None:
            raise RestartRefused(reason)
        with self._lock:
            number = (self._restart.number if self._restart else 0) + 1
            self._restart = RestartRequest(number=number, in_place=in_place)
        self.wake()
        return {"member": self.config.name, "request": number, "in_place": in_place}

    def request_reinit(self) -> dict[str, Any]:
        """Accept a re-clone of this replica from the leader, which the loop plans (pgkeel.ha.plan_reinit);
        ReinitRefused for the leader, a cluster without a running leader, or a node that keeps an aside copy."""
        asides = [str(a.path) for a in self.instance.asides()]
        reason = reinit_refusal(ClusterState.decode(self.dcs.view()), self.config.name, asides)
        if reason is not None:
            raise ReinitRefused(reason)
        with self._lock:
            number = (self._reinit.number if self._reinit else 0) + 1
            self._reinit = ReinitRequest(number=number)
        self.wake()
        return {"member": self.config.name, "request": number, "requested_at": time.time()}

    def reload(self) -> dict[str, Any]:
        """Reload postgres' files now (`pgkeel apply`) rather than when housekeeping next sees them change."""
        running = self.instance.is_running()
        if running:
            self.housekeeping.reload_now()
        return {"member": self.config.name, "reloaded": running}

    def request_switchover(
        self, to: str | None, force: bool = False, leader: str | None = None, at: float | None = None
    ) -> dict[str, Any]:
        """Record a request the store's view allows now; else RequestRefused (pgkeel.ha.switchover_request).
        A scheduled one (`at`) stays in the store until a little after its time (store_ttl)."""
        state = ClusterState.decode(self.dcs.view())
        wall = time.time()
        request = check_request(state, list(current_members(self.config.members, state)), to, force, leader, at, wall)
        self.dcs.set_switchover(request.to_json(), ttl=store_ttl(request, self.config.ha.switchover_ttl, wall))
        return request.to_json()

    def cancel_switchover(self) -> dict[str, Any] | None:
        """Remove the pending (e.g. scheduled) switchover request; the one removed, None when there was none."""
        pending = ClusterState.decode(self.dcs.view()).switchover
        self.dcs.clear_switchover()
        return pending.to_json() if pending is not None else None
