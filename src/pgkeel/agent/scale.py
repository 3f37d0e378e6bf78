"""The scaling step of each roll round: follow the StatefulSet's spec.replicas (pgkeel.ha.k8s_scaling), record it.

A step of the Roller's round, not a thread of its own: the round already reads the StatefulSet
(one GET serves both), and one thread means a scaling and a roll step are never decided at once
from two different reads. What it knows of the cluster is the loop's last store read
(`Agent.last`); it records through the same path as POST /membership (`Agent.set_membership`, a
compare-and-swap on the store's `config` value). Refusals and waits are logged once per change.
"""

from __future__ import annotations

import logging
from typing import assert_never

from pgkeel.dcs.k8s_contract import stateful_set
from pgkeel.ha.k8s_scaling import RecordMembership, RefuseScale, ScaleDecision, ScaleView, ScaleWait, decide_scale
from pgkeel.ha.loop import Agent
from pgkeel.ha.membership import current_members
from pgkeel.ha.model import Observation

log = logging.getLogger("pgkeel.agent")


class Scaler:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.last: ScaleDecision | None = None  # the previous round's decision: log only what changed
        # The loop's observation when this agent last recorded: until the loop reads the store again, the
        # view still shows the old members, and recording the same membership again would be noise.
        self._recorded_during: Observation | None = None

    def observe(self, replicas: int | None) -> ScaleView | None:
        last = self.agent.last
        if last is None:
            return None  # no loop yet: nothing is known of the cluster
        config = self.agent.config
        return ScaleView(
            me=config.name,
            stateful_set=stateful_set(config.scope),
            replicas=replicas,
            members=current_members(config.members, last.cluster),
            cluster=last.cluster,
            settings=config.ha,
        )

    def round(self, replicas: int | None) -> ScaleDecision | None:
        """Decide and carry out one step; the decision (None before the agent's first loop)."""
        view = self.observe(replicas)
        if view is None:
            return None
        decision = decide_scale(view)
        changed = self.last is None or (decision.rule, decision.reason) != (self.last.rule, self.last.reason)
        self.last = decision
        action = decision.action
        match action:
            case None:
                pass
            case RefuseScale():
                if changed:
                    log.warning("[%s] %s", decision.rule, action.reason)
            case ScaleWait():
                if changed:
                    log.info("[%s] %s", decision.rule, action.reason)
            case RecordMembership():
                if self._recorded_during is not None and self._recorded_during is self.agent.last:
                    return decision
                if action.warning:
                    log.warning("[%s] %s", decision.rule, action.warning)
                log.info("[%s] %s", decision.rule, action.reason)
                self.agent.set_membership(list(action.members), action.sync_standbys)  # DCSError: the next round
                self._recorded_during = self.agent.last
            case _:
                assert_never(action)
        return decision
