"""Before a stopping agent stops its postgres: the leader hands over (pgkeel.ha.rules.drain), bounded in time.

Kubernetes only (run_agent calls it when the store has a pod): there SIGTERM comes from the kubelet
because this pod is going away (delete, eviction by a drain, a roll step) while the others stay,
so one switchover replaces a failover. Locally `pgkeel down` stops every agent at once, where a
hand-over to a member that is itself stopping would only delay the stop.

Each attempt observes afresh (the store, postgres), decides, and runs the plan as one chain that
stops at the first failure. A checkpoint that overran its budget is waited for by the next attempt,
while the leader keeps renewing; anything else ends the hand-over, and the shutdown that follows
releases the lease as it always did. Candidates whose pods are terminating too are left out.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pgkeel.dcs.pod import OwnPod
from pgkeel.ha import clock
from pgkeel.ha.actions import Checkpoint, HandOver
from pgkeel.ha.loop import Agent
from pgkeel.ha.memory import remember
from pgkeel.ha.model import Observation
from pgkeel.ha.rules import drain
from pgkeel.k8s import layout

log = logging.getLogger("pgkeel.agent")

def without(o: Observation, leaving: frozenset[str]) -> Observation:
    """The observation with the members whose pods are terminating as if they had no record: no candidates."""
    if o.cluster is None or not leaving:
        return o
    members = {n: r for n, r in o.cluster.members.items() if n == o.me or n not in leaving}
    return replace(o, cluster=replace(o.cluster, members=members))


def hand_over_before_stop(agent: Agent, pod: OwnPod, budget: float = layout.HAND_OVER_SECONDS) -> bool:
    """True once the lease was handed to a replica; False when there was nothing to hand over or it failed."""
    deadline = clock.now() + budget
    while clock.now() < deadline:
        observed = agent.observer.observe(agent.memory, agent.fence.kind)
        o = without(observed, pod.revisions().terminating - {agent.config.name})
        decision = drain(o)
        if decision is None:
            return False
        log.info("[%s] %s", decision.rule, decision.reason or "handing over before stopping")
        results = agent.executor.run(decision.actions)
        agent.memory = remember(o, decision, results)
        if any(isinstance(action, HandOver) and outcome.ok for action, outcome in results):
            return True
        failed = results[-1][0] if results and not results[-1][1].ok else None
        if not isinstance(failed, Checkpoint):
            log.warning("hand-over before stopping did not complete (%s): releasing the lease instead",
                        failed.kind if failed else "no step failed")
            return False
    log.warning("hand-over before stopping ran out of its %gs: releasing the lease instead", budget)
    return False
