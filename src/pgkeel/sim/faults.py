"""Faults: what can go wrong, as timed events, and seeded random schedules of them.

A Fault is a start and an end (heal) at fixed simulated times; applying the same list to the
same seed replays the same run. Partitions are counted per directed link, so overlapping faults
on one link heal independently. Durations range from sub-second blips to far longer than every
timer (ttl 3 s, member_ttl 10 s, stream_failure_timeout 10 s, restart_timeout 10 s).
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from dataclasses import dataclass

from pgkeel.ha.records import Membership, SwitchoverRequest
from pgkeel.sim.world import STORE, World

KINDS = (
    "kill-agent",  # kill -9 of the agent only (postgres keeps running); restarted at the end
    "pause-agent",  # SIGSTOP of the agent only
    "pause-node",  # SIGSTOP of agent and postgres (a frozen VM)
    "crash-postgres",  # postgres dies (the agent restarts it)
    "crash-node",  # agent and postgres die; the machine comes back at the end
    "cut-store",  # node <-> store
    "cut-store-out",  # node -> store only (requests lost)
    "cut-store-in",  # store -> node only (answers lost)
    "cut-peer",  # node <-> node
    "cut-peer-out",  # node -> node only
    "store-down",  # the whole store
    "store-slow",  # every call takes longer than dcs_timeout
)


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    node: str = ""
    other: str = ""
    duration: float = 0.0

    def __str__(self) -> str:
        who = self.node + (f"/{self.other}" if self.other else "")
        return f"{self.kind}({who}) for {self.duration:.1f}s"


class Faults:
    """Applies faults to a world; keeps the per-link partition counts."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.cuts: Counter[tuple[str, str]] = Counter()
        self.active: Counter[str] = Counter()  # "store-down", "store-slow"
        self.resolved: dict[int, Fault] = {}  # a fault on "@primary" etc., as resolved when it began

    def resolve(self, f: Fault) -> Fault:
        """Targets chosen when the fault begins: @primary (the leading primary), @replica (its most
        advanced standby), @bootstrapper (the node in the initialize claim)."""
        w = self.world
        primary = w.leading_primary()
        replicas = sorted(
            (n for n in w.nodes.values() if n is not primary and not n.down and n.pg.has_data),
            key=lambda n: (-n.pg.lsn, n.name),
        )
        claim = (w.store.initialize or "").removeprefix("bootstrapping:")
        names = {
            "@primary": primary.name if primary else "",
            "@replica": replicas[0].name if replicas else "",
            "@replica2": replicas[1].name if len(replicas) > 1 else "",
            "@bootstrapper": claim if claim in w.nodes else "",
        }
        return Fault(f.at, f.kind, names.get(f.node, f.node), names.get(f.other, f.other), f.duration)

    def schedule(self, faults: list[Fault]) -> None:
        for f in faults:
            self.world.at(f.at, functools.partial(self.begin, f))
            if f.kind not in ("crash-postgres", "slow-checkpoint", "switchover"):
                self.world.at(f.at + f.duration, functools.partial(self.end, f))

    def _cut(self, a: str, b: str, delta: int) -> None:
        self.cuts[(a, b)] += delta
        if self.cuts[(a, b)] > 0:
            self.world.blocked.add((a, b))
        else:
            self.world.blocked.discard((a, b))

    def _links(self, f: Fault) -> list[tuple[str, str]]:
        n, o = f.node, f.other
        return {
            "cut-store": [(n, STORE), (STORE, n)],
            "cut-store-out": [(n, STORE)],
            "cut-store-in": [(STORE, n)],
            "cut-peer": [(n, o), (o, n)],
            "cut-peer-out": [(n, o)],
        }.get(f.kind, [])

    def begin(self, f: Fault) -> None:
        w = self.world
        f = self.resolved.setdefault(id(f), self.resolve(f))
        w.last_fault_at = w.t
        w.log(f"FAULT {f}")
        agent = w.agents.get(f.node)
        node = w.nodes.get(f.node)
        for a, b in self._links(f):
            self._cut(a, b, 1)
        if f.kind in ("store-down", "store-slow"):
            self.active[f.kind] += 1
            self._store()
        elif f.kind == "kill-agent" and agent is not None:
            agent.crash()
        elif f.kind == "pause-agent" and agent is not None:
            agent.paused = True
        elif f.kind == "pause-node" and node is not None:
            node.paused = True
        elif f.kind == "crash-postgres" and node is not None and not node.down:
            node.pg.crash()
        elif f.kind == "crash-node" and node is not None and agent is not None:
            node.down = True
            node.pg.crash()
            agent.crash()
        elif f.kind == "slow-checkpoint" and node is not None:
            node.pg.slow_checkpoint = f.duration  # the next checkpoint there lasts this long
        elif f.kind == "membership":  # an operator's scaling: node = the members (comma-separated), other = k
            w.store.membership = Membership(tuple(f.node.split(",")), int(f.other))
        elif f.kind == "switchover":  # an operator: `pgkeel switchover --to NODE` (the API writes the request)
            request = SwitchoverRequest(source=w.store.live_holder(w.t), target=f.node or None)
            w.store.set_switchover(request, w.settings.switchover_ttl, w.t)

    def end(self, f: Fault) -> None:
        w = self.world
        f = self.resolved.get(id(f), f)
        w.last_fault_at = w.t
        agent = w.agents.get(f.node)
        node = w.nodes.get(f.node)
        for a, b in self._links(f):
            self._cut(a, b, -1)
        if f.kind in ("store-down", "store-slow"):
            self.active[f.kind] -= 1
            self._store()
        elif f.kind == "kill-agent" and agent is not None and not agent.alive and node is not None and not node.down:
            agent.boot(0.2)
        elif f.kind == "pause-agent" and agent is not None:
            agent.resume()
        elif f.kind == "pause-node" and node is not None and agent is not None:
            node.paused = False
            w.watchdog(node)
            agent.resume()
        elif f.kind == "crash-node" and node is not None and agent is not None and node.down:
            node.down = False
            agent.boot(1.0)
        else:
            return
        w.log(f"HEAL {f}")

    def _store(self) -> None:
        self.world.store.up = self.active["store-down"] <= 0
        self.world.store.slow = self.active["store-slow"] > 0


def random_schedule(rng: random.Random, names: list[str], duration: float, intensity: float = 1.0) -> list[Fault]:
    """Faults starting in [5 s, duration): about one every 6 s / intensity; a third of them long (15-45 s)."""
    faults: list[Fault] = []
    t = rng.uniform(3.0, 8.0)
    while t < duration:
        kind = rng.choice(KINDS)
        node = rng.choice(names)
        other = rng.choice([n for n in names if n != node]) if len(names) > 1 else ""
        if kind.startswith("cut-peer") and not other:
            kind = "cut-store"
        if kind == "crash-postgres":
            length = 0.0
        elif rng.random() < 0.33:
            length = rng.uniform(15.0, 45.0)
        else:
            length = rng.choice([rng.uniform(0.2, 2.0), rng.uniform(2.0, 12.0)])
        faults.append(Fault(round(t, 3), kind, node, other if kind.startswith("cut-peer") else "", round(length, 3)))
        t += rng.expovariate(intensity / 6.0)
    return faults
