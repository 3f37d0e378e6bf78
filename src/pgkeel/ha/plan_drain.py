"""The drain section: a leader told to stop (its pod deleted or evicted) hands over before postgres stops.

Without this, stopping the leader's agent stops postgres and releases the lease, and the others
elect: a failover, with its detach, probe and (quorum) all-members wait. Stopping is instead
treated as a switchover request to the best streaming replica, carried out by the switchover's own
plan (pgkeel.ha.plan_lead.switchover): checkpoint while serving, fast stop, the target confirms it
received everything, the lease handed over atomically. If any step fails, the shutdown rule that
follows (shutdown.stop) releases the lease as before, so draining never costs more than today.
"""

from __future__ import annotations

from dataclasses import replace

from pgkeel.ha import plan_lead
from pgkeel.ha.actions import AnyAction
from pgkeel.ha.facts import acting_primary, i_lead, switchover_target
from pgkeel.ha.model import Observation
from pgkeel.ha.records import SwitchoverRequest


def as_switchover(o: Observation) -> Observation:
    """The observation as if this leader had been asked to switch over to the best replica."""
    if o.cluster is None:
        return o
    return replace(o, cluster=replace(o.cluster, switchover=SwitchoverRequest(source=o.me)))


def leading_with_a_successor(o: Observation) -> bool:
    return i_lead(o) and acting_primary(o) and switchover_target(as_switchover(o)) is not None


def hand_over(o: Observation) -> list[AnyAction]:
    return plan_lead.switchover(as_switchover(o))
