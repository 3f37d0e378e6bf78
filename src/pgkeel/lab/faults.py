"""The faults, one per trial: inject, then restore the node the way an operator (or `pgkeel up`) would.

`inject` returns when the lab has done its part of the recovery (restarted agents, SIGCONT,
link up); the time it returns is where rejoin time is measured from.
"""

from __future__ import annotations

import signal
import time

from pgkeel.lab.cluster import LabCluster
from pgkeel.lab.monitor import Monitor

FAULTS = ("kill-primary", "kill-postgres", "kill-agent", "pause-primary", "partition-primary", "switchover")


def inject(fault: str, lab: LabCluster, monitor: Monitor, primary: str, t_fault: float) -> None:
    ttl = lab.timings.ttl
    if fault == "kill-primary":
        lab.kill_node(primary)
        monitor.wait_promoted(primary, t_fault, timeout=30)
        lab.ensure_agents()
    elif fault == "kill-postgres":
        lab.kill_postgres(primary)  # the agent lives on and restarts it in place
    elif fault == "kill-agent":
        lab.kill_agent(primary)
        time.sleep(ttl + 2.0)  # let the lease expire: peers must see the orphaned primary and not promote
        lab.ensure_agents()
    elif fault == "pause-primary":
        lab.pause(primary, signal.SIGSTOP)
        time.sleep(2 * ttl)  # longer than the TTL: a new leader is elected meanwhile
        lab.pause(primary, signal.SIGCONT)
    elif fault == "partition-primary":
        i = lab.index(primary)
        lab.net.partition(i)
        try:
            monitor.wait_promoted(primary, t_fault, timeout=30)
            time.sleep(1.0)
        finally:
            lab.net.heal(i)
    elif fault == "switchover":
        lab.switchover()
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
