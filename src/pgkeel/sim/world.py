"""The simulated world: true time, one seeded event queue, clocks, network, store, postgres models,
the writer and WAL shipping.

Invariants: every random choice comes from the world's one `random.Random(seed)` in event order,
so a seed replays exactly; the store's clock is the true time; each node's agent and postgres
share that node's boot clock (rate drift bounded by SimConfig.drift); nothing here decides HA —
agents (pgkeel.sim.agent) run the real rules against what this world lets them see.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pgkeel.ha.failsafe import Promises
from pgkeel.ha.records import Address, FenceKind
from pgkeel.ha.settings import HASettings, Mode
from pgkeel.ha.sync import SyncRule
from pgkeel.instance import slot_name_for
from pgkeel.sim.pg import SimPostgres, is_prefix
from pgkeel.sim.store import SimStore

if TYPE_CHECKING:
    from pgkeel.sim.agent import SimAgent

T = TypeVar("T")
STORE = "store"
PORT = 5432
STORE_LATENCY = 0.005
SHIP_PERIOD = 0.1
WRITE_PERIOD = 0.1


class StoreError(Exception):
    """The store could not be reached or did not answer within dcs_timeout (DCSError)."""


@dataclass
class SimConfig:
    nodes: int = 3
    settings: HASettings = field(default_factory=HASettings)
    fence: FenceKind = FenceKind.EXTENSION
    fences: dict[str, FenceKind] = field(default_factory=dict)  # per-node override
    drift: float = 0.01  # clock rate within 1 ± drift
    probe_loss: float = 0.0  # probability an election probe is lost (or too late)
    ship_skip: float = 0.15  # probability a standby misses one shipping round (replication lag)
    writer: bool = True

    @property
    def names(self) -> list[str]:
        return [f"pg-{i}" for i in range(self.nodes)]


@dataclass
class Clock:
    offset: float
    rate: float

    def local(self, t: float) -> float:
        return self.offset + self.rate * t


@dataclass
class Node:
    name: str
    pg: SimPostgres
    clock: Clock
    down: bool = False  # the machine crashed: agent and postgres gone until restart
    paused: bool = False  # the whole node frozen (agent and postgres)
    # failsafe: pgkeel.ha.failsafe.Promises itself (local clock); kept on the node, as its file outlives agents
    promises: Promises = field(default_factory=lambda: Promises(None, ttl=0.0, now=0.0))

    @property
    def address(self) -> Address:
        return Address(self.name, PORT)


@dataclass
class Ack:
    txid: int
    lsn: int
    rec: tuple[int, int]
    node: str
    at: float
    rule: str  # the synchronous_standby_names it was acknowledged under ('' = local flush)


class World:
    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.settings = config.settings
        self.rng = random.Random(seed)
        self.t = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.store = SimStore()
        self.blocked: set[tuple[str, str]] = set()
        self.nodes: dict[str, Node] = {}
        for i, name in enumerate(config.names):
            rate = 1.0 + self.rng.uniform(-config.drift, config.drift)
            fence = config.fences.get(name, config.fence)
            self.nodes[name] = Node(name, SimPostgres(name, fence), Clock(1000.0 * (i + 1), rate))
            self.nodes[name].promises = Promises(None, ttl=self.settings.ttl, now=0.0)
        self.agents: dict[str, SimAgent] = {}
        self._ids = 0
        self.acks: list[Ack] = []
        self.events: list[str] = []  # the transcript
        self.steps = 0
        self.last_fault_at = 0.0  # any fault began or ended (the liveness clock restarts)

    # --- events --------------------------------------------------------------------------------
    def at(self, t: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(t, self.t), self._seq, fn))

    def after(self, dt: float, fn: Callable[[], None]) -> None:
        self.at(self.t + dt, fn)

    def pop(self, until: float) -> bool:
        """Run the next event if it is due before `until`; False when none is."""
        if not self._queue or self._queue[0][0] > until:
            return False
        t, _, fn = heapq.heappop(self._queue)
        self.t = t
        fn()
        self.steps += 1
        return True

    def log(self, line: str) -> None:
        self.events.append(f"{self.t:9.3f} {line}")

    def new_id(self) -> int:
        self._ids += 1
        return self._ids

    def local(self, name: str) -> float:
        return self.nodes[name].clock.local(self.t)

    def true_delay(self, name: str, local_dt: float) -> float:
        return max(0.0, local_dt) / self.nodes[name].clock.rate

    # --- network and store ------------------------------------------------------------------------
    def reach(self, a: str, b: str) -> bool:
        return (a, b) not in self.blocked

    def connected(self, a: str, b: str) -> bool:
        """A TCP conversation between a and b works: both directions, neither machine down or frozen."""
        for n in (a, b):
            node = self.nodes.get(n)
            if node is not None and (node.down or node.paused):
                return False
        return self.reach(a, b) and self.reach(b, a)

    def by_address(self, address: Address | str | None) -> Node | None:
        if address is None:
            return None
        host = address.host if isinstance(address, Address) else str(address).split(":")[0]
        return self.nodes.get(host)

    def store_latency(self, name: str) -> float:
        return self.settings.dcs_timeout if self.store.slow or not self.store_ok(name) else STORE_LATENCY

    def store_ok(self, name: str) -> bool:
        return self.store.up and not self.store.slow and self.reach(name, STORE) and self.reach(STORE, name)

    def store_call(self, name: str, fn: Callable[[], T]) -> T:
        """One DCS call: it lands only if the request gets there; it answers only if all is well."""
        s = self.store
        if not s.up or not self.reach(name, STORE):
            raise StoreError("store unreachable")
        if s.slow:
            if self.rng.random() < 0.5:
                fn()  # landed, but the answer came after dcs_timeout
            raise StoreError("store timed out")
        result = fn()
        if not self.reach(STORE, name):
            raise StoreError("no answer from the store")
        return result

    # --- postgres facts --------------------------------------------------------------------------
    def answering(self, node: Node) -> bool:
        return not node.down and not node.paused and node.pg.answering(self.t)

    def can_commit(self, node: Node) -> bool:
        """This node's postgres would accept a write commit now (primary, not frozen, fence allows)."""
        pg = node.pg
        return self.answering(node) and not pg.in_recovery and pg.commit_allowed(node.clock.local(self.t))

    def sync_flushes(self, primary: Node) -> dict[str, int]:
        """Standbys streaming straight from `primary` now, and what they flushed (pg_stat_replication)."""
        return {
            n.name: n.pg.lsn
            for n in self.nodes.values()
            if n.pg.streaming and n.pg.received_from == primary.name and self.connected(n.name, primary.name)
        }

    def can_acknowledge(self, node: Node) -> bool:
        """Check (1)'s notion: a new commit here could be acknowledged now. Async: the commit is allowed.
        Quorum: also at least k of the names in its synchronous_standby_names stream from it right now
        (an empty or unparsable setting acknowledges on local flush, as postgres does)."""
        if not self.can_commit(node):
            return False
        if self.settings.mode is Mode.ASYNC:
            return True
        rule = SyncRule.parse(node.pg.sync_names)
        if rule is None:
            return True
        flushes = self.sync_flushes(node)
        return sum(1 for m in rule.members if m in flushes) >= rule.quorum

    # --- clients and replication ------------------------------------------------------------------
    def start_background(self) -> None:
        if self.config.writer:
            self.after(WRITE_PERIOD, self.write)
        self.after(SHIP_PERIOD, self.ship)

    def write(self) -> None:
        """The writer: one commit to every node that accepts one (clients reach every node), once the
        cluster exists (the initialize key holds a system identifier: no writes during a bootstrap)."""
        init = self.store.initialize
        for node in self.nodes.values() if init and not init.startswith("bootstrapping:") else ():
            if self.can_commit(node):
                txid = self.new_id()
                node.pg.wal.append((node.pg.timeline or 1, txid))
                node.pg.pending.append((node.pg.lsn, txid))
        self.release_waiters()
        self.after(WRITE_PERIOD * self.rng.uniform(0.5, 1.5), self.write)

    def release_waiters(self) -> None:
        """Acknowledge every waiting commit whose synchronous rule is met (postgres' SyncRepReleaseWaiters)."""
        for node in self.nodes.values():
            pg = node.pg
            if not pg.pending or not self.answering(node) or pg.in_recovery:
                continue
            rule = SyncRule.parse(pg.sync_names)
            flushes = self.sync_flushes(node) if rule else {}
            keep = []
            for lsn, txid in pg.pending:
                if rule is None or sum(1 for m in rule.members if flushes.get(m, 0) >= lsn) >= rule.quorum:
                    self.acks.append(Ack(txid, lsn, pg.wal[lsn - 1], node.name, self.t, pg.sync_names))
                else:
                    keep.append((lsn, txid))
            pg.pending = keep

    def ship(self) -> None:
        for node in self.nodes.values():
            self.stream(node)
        self.release_waiters()
        self.after(SHIP_PERIOD, self.ship)

    def stream(self, node: Node, final: bool = False) -> None:
        """One walreceiver round: catch up with `following` when its history contains ours."""
        pg = node.pg
        source = self.by_address(pg.following)
        ok = self.answering(node) and pg.in_recovery and source is not None and source is not node
        if not ok or source is None or not self.answering(source) or not self.connected(node.name, source.name):
            pg.streaming, pg.received_from = False, None
            return
        src = source.pg
        slot = src.slots.get(slot_name_for(node.name))
        if src.sysid != pg.sysid or not is_prefix(pg.wal, src.wal):
            # another history, or ahead of the source ("requested starting point"): the walreceiver errors out
            pg.streaming, pg.received_from = False, None
            return
        # PostgreSQL 15 acquires the slot (it must exist) but does not refuse an invalidated physical slot:
        # streaming works while the source still has the WAL from our position ("already removed" otherwise).
        if slot is None or pg.lsn < src.retained_from():
            pg.streaming, pg.received_from = False, None
            pg.source_lost = slot is not None
            return
        pg.streaming, pg.received_from, pg.source_lost = True, source.name, False
        if final or self.rng.random() >= self.config.ship_skip:
            pg.wal = list(src.wal)
        if not slot.lost:
            slot.restart = max(slot.restart, pg.lsn)

    def ship_final(self, primary: Node) -> None:
        """Fast shutdown: the walsenders send everything, up to the shutdown checkpoint, to connected standbys."""
        for node in self.nodes.values():
            if node.pg.streaming and node.pg.received_from == primary.name:
                self.stream(node, final=True)

    def watchdog(self, node: Node) -> None:
        """The watchdog process: SIGKILL postgres once the armed deadline passed (disarmed: left alone)."""
        pg = node.pg
        if node.down or pg.fence_kind is not FenceKind.WATCHDOG or not pg.running or not pg.fence_armed:
            return
        if node.paused:
            return  # frozen with the node; the resume re-checks
        if node.clock.local(self.t) >= pg.fence_deadline:
            self.log(f"{node.name} watchdog: lease deadline passed, postgres killed")
            pg.crash()

    def arm_fence(self, node: Node, deadline: float) -> None:
        node.pg.fence_armed, node.pg.fence_deadline = True, deadline
        if node.pg.fence_kind is FenceKind.WATCHDOG:
            delay = self.true_delay(node.name, deadline - node.clock.local(self.t)) + 0.02
            self.after(delay, lambda: self.watchdog(node))

    def leading_primary(self) -> Node | None:
        holder = self.store.live_holder(self.t)
        node = self.nodes.get(holder) if holder else None
        return node if node is not None and self.answering(node) and not node.pg.in_recovery else None
