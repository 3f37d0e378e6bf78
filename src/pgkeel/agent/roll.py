"""The roll thread: every few seconds, observe the pods and the lock, decide (pgkeel.ha.rollout), act.

Each round first follows the StatefulSet's spec.replicas (pgkeel.agent.scale), from the same read.

It runs beside the agent loop, not inside it: a roll round reads the StatefulSet and the lock Lease
(two GETs), far less often than the loop renews the lease, and it never touches postgres. What it
knows of the cluster is the loop's last store read (`Agent.last`); its own steps go through the
pod (pgkeel.dcs.pod) and, for the primary's switchover, through the same check an operator's
request does (`Agent.request_switchover`). A round that fails is logged and tried again.
"""

from __future__ import annotations

import logging
import threading
from typing import assert_never

from pgkeel.agent.scale import Scaler
from pgkeel.dcs import DCSError
from pgkeel.dcs.pod import OwnPod, StatefulSetState
from pgkeel.ha.loop import Agent
from pgkeel.ha.membership import current_members
from pgkeel.ha.rollout import (
    DeleteOwnPod,
    ReleaseRollLock,
    RequestSwitchover,
    RollDecision,
    RollView,
    RollWait,
    TakeRollLock,
    decide_roll,
)
from pgkeel.ha.switchover_request import RequestRefused

log = logging.getLogger("pgkeel.agent")

IDLE_SECONDS = 5.0  # between rounds while every pod runs the update revision and nobody holds the lock


class Roller:
    def __init__(self, agent: Agent, pod: OwnPod, idle: float = IDLE_SECONDS) -> None:
        self.agent = agent
        self.pod = pod
        self.idle = idle
        self.busy = max(1.0, 2 * agent.config.ha.loop_wait)  # between rounds while a roll is under way
        self.last: RollDecision | None = None
        self.scaler = Scaler(agent)  # the scaling step of each round
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgkeel-roll", daemon=True)

    def start(self) -> Roller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.busy
            try:
                decision = self.round()
                scaling = self.scaler.last is not None and self.scaler.last.under_way
                if decision is not None and decision.rule in ("roll.up-to-date", "roll.unknown") and not scaling:
                    wait = self.idle
            except DCSError as exc:
                log.warning("roll round: the Kubernetes API could not be asked: %s", exc)
            except Exception:  # the thread must survive anything one round throws
                log.exception("roll round failed")
            self._stop.wait(wait)

    def observe(self, sts: StatefulSetState) -> RollView | None:
        last = self.agent.last
        if last is None:
            return None  # no loop yet: nothing is known of the cluster
        config = self.agent.config
        return RollView(
            me=config.name,
            members=current_members(config.members, last.cluster),
            update_revision=sts.update_revision,
            pods=self.pod.revisions(),
            lock=self.pod.roll_lock(),
            cluster=last.cluster,
            max_lag_bytes=config.ha.max_lag_bytes,
            no_failover=config.ha.no_failover,
        )

    def round(self) -> RollDecision | None:
        sts = self.pod.stateful_set()
        scaled = self.scaler.round(sts.replicas)
        if scaled is not None and scaled.rule == "scale.record":
            return None  # the membership changed: the next round decides the roll on the loop's fresh view
        view = self.observe(sts)
        if view is None:
            return None
        decision = decide_roll(view)
        changed = self.last is None or (decision.rule, decision.reason) != (self.last.rule, self.last.reason)
        if changed and decision.actions:
            log.info("[%s] %s", decision.rule, decision.reason)
        self.last = decision
        for action in decision.actions:
            if not self.perform(action):
                break
        return decision

    def perform(self, action: TakeRollLock | ReleaseRollLock | DeleteOwnPod | RequestSwitchover | RollWait) -> bool:
        """Carry out one step; False stops the rest of the plan (a lost lock race, a refused request)."""
        match action:
            case TakeRollLock():
                if not self.pod.take_roll_lock(action.step, action.duration):
                    log.info("roll lock: another pod took it first")
                    return False
                return True
            case ReleaseRollLock():
                return self.pod.release_roll_lock()
            case DeleteOwnPod():
                log.info("%s", action.reason)
                self.pod.delete_self(action.uid)
                return True
            case RequestSwitchover():
                try:
                    self.agent.request_switchover(action.target, leader=action.leader)
                except RequestRefused as exc:
                    log.info("roll: switchover to %s refused: %s", action.target, exc)
                    return False
                self.agent.wake()
                return True
            case RollWait():
                return True
            case _:
                assert_never(action)
