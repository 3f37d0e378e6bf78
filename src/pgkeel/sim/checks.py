"""What must hold after every step of a simulation; violations are recorded, never raised.

1. split-brain: never two nodes that could acknowledge a write at the same moment (World.can_acknowledge:
   postgres answers as a primary, is not frozen, its fence lets a commit through, and in quorum
   mode at least k of the names in its own 'ANY k (...)' stream from it now). One violation per window.
2. lost-ack (quorum mode): every acknowledged commit is in the WAL of the current primary (the
   live lease holder running as a primary), at the LSN it was acknowledged at — checked whenever
   that primary or its WAL history object changes, and at the end. Async losses are only counted.
3. data: no node keeps more than one aside copy, and no data directory was ever removed.
4. liveness: once the store and a majority of members (agent and postgres up, unfrozen, reaching
   the store both ways and each other) have stayed so for `bound` seconds, exactly one node can
   acknowledge writes. One violation per stable period. Async mode waits by design when every
   healthy node lags the last leader's recorded position by more than max_lag, and both modes wait when
   every healthy node sits on an older timeline than the one it served on (pgkeel.ha.election): no
   violation then, the old leader must
   come back (or an operator forces a failover). Likewise, by design, when nothing fences the last
   leader (fence none) and no healthy node can see that its postgres stopped or became a standby
   (it is frozen, cut off, or its machine is down): "cannot tell" is never taken as "dead".
"""

from __future__ import annotations

from dataclasses import dataclass

from pgkeel.ha.election import timeline_floor
from pgkeel.ha.records import FenceKind
from pgkeel.ha.settings import Mode
from pgkeel.sim.world import STORE, World


@dataclass(frozen=True)
class Violation:
    kind: str  # split-brain | lost-ack | data | liveness
    t: float
    detail: str


class Checker:
    def __init__(self, world: World, liveness_bound: float = 30.0) -> None:
        self.world = world
        self.bound = liveness_bound
        self.violations: list[Violation] = []
        self.split_windows = 0
        self.lost_async = 0
        self._in_split = False
        self._primary_key: tuple[str, int] | None = None
        self._lost: set[int] = set()
        self._healthy: frozenset[str] | None = None
        self._healthy_facts: tuple[object, ...] | None = None
        self._healthy_now: frozenset[str] = frozenset()
        self._stable_since = 0.0
        self._liveness_reported = False

    def _add(self, kind: str, detail: str) -> None:
        w = self.world
        self.violations.append(Violation(kind, w.t, detail))
        w.log(f"VIOLATION {kind}: {detail}")

    def after_step(self) -> None:
        w = self.world
        writable = [n.name for n in w.nodes.values() if w.can_acknowledge(n)]
        if len(writable) >= 2 and not self._in_split:
            self.split_windows += 1
            self._add("split-brain", f"{writable} can all acknowledge writes")
        self._in_split = len(writable) >= 2
        primary = w.leading_primary()
        key = (primary.name, id(primary.pg.wal)) if primary else None
        if key != self._primary_key:
            self._primary_key = key
            self.check_acks()
        for node in w.nodes.values():
            if node.pg.asides > 1 or node.pg.data_removed:
                self._add("data", f"{node.name}: {node.pg.asides} asides, {node.pg.data_removed} removed")
                node.pg.data_removed = 0
                node.pg.asides = 1
        self._liveness(writable)

    def check_acks(self) -> None:
        w = self.world
        primary = w.leading_primary()
        if primary is None:
            return
        wal = primary.pg.wal
        for ack in w.acks:
            if ack.txid in self._lost:
                continue
            if ack.lsn > len(wal) or wal[ack.lsn - 1] != ack.rec:
                self._lost.add(ack.txid)
                if w.settings.mode is Mode.QUORUM:
                    self._add(
                        "lost-ack",
                        f"txid {ack.txid} acknowledged by {ack.node} at lsn {ack.lsn} under {ack.rule!r} "
                        f"is not in {primary.name}'s history",
                    )
                else:
                    self.lost_async += 1

    def _electable(self, healthy: frozenset[str]) -> bool:
        """Could any healthy node pass the timeline bound (both modes) and the async lag bound against the
        durable history? A node behind the timeline the last leader served on never promotes (it would
        reuse that timeline's ID), so when only the last leader holds that timeline, the cluster waits for it."""
        w = self.world
        history = w.store.history
        settings = w.config.settings
        if history is not None and history.leader in healthy:
            return True
        if not healthy - settings.no_failover:
            return False  # nobody healthy may be promoted automatically (spec.members tags)
        if history is None:
            return True
        floor = timeline_floor(history)
        for name in healthy - settings.no_failover:
            pg = w.nodes[name].pg
            lag_ok = settings.mode is not Mode.ASYNC or history.lsn is None or (
                history.lsn - pg.lsn <= settings.max_lag_bytes
            )
            if lag_ok and (pg.timeline or 0) >= floor:
                return True
        return False

    def _unfenced_old_leader_may_write(self, healthy: frozenset[str]) -> bool:
        """The last leader has no fence and no healthy node can see it stopped (pgkeel.ha.election waits)."""
        w = self.world
        history = w.store.history
        if history is None or history.fence is not FenceKind.NONE or history.leader in healthy:
            return False
        node = w.nodes.get(history.leader)
        if node is None:
            return False
        seen = any(w.connected(name, node.name) for name in healthy) and not node.down and not node.paused
        stopped_or_standby = not node.pg.running or (w.answering(node) and node.pg.in_recovery)
        return not (seen and stopped_or_standby)

    def healthy(self) -> frozenset[str]:
        """Nodes up, with a live agent, reaching the store and each other; recomputed only when one of the
        facts it depends on changed (it is asked after every step)."""
        w = self.world
        facts = (w.store.up, w.store.slow, frozenset(w.blocked),
                 tuple((n.down, n.paused, w.agents[n.name].alive, w.agents[n.name].paused) for n in w.nodes.values()))
        if facts != self._healthy_facts:
            self._healthy_facts, self._healthy_now = facts, self._compute_healthy()
        return self._healthy_now

    def _compute_healthy(self) -> frozenset[str]:
        w = self.world
        if not w.store.up or w.store.slow:
            return frozenset()
        up = [
            n.name
            for n in w.nodes.values()
            if not n.down
            and not n.paused
            and w.agents[n.name].alive
            and not w.agents[n.name].paused
            and w.reach(n.name, STORE)
            and w.reach(STORE, n.name)
        ]
        return frozenset(n for n in up if all(w.connected(n, m) for m in up))

    def _liveness(self, writable: list[str]) -> None:
        w = self.world
        healthy = self.healthy()
        if healthy != self._healthy or w.last_fault_at > self._stable_since:
            self._healthy, self._stable_since, self._liveness_reported = healthy, w.t, False
        majority = len(w.nodes) // 2 + 1
        if len(healthy) < majority or self._liveness_reported or w.t - self._stable_since < self.bound:
            return
        if not writable and (not self._electable(healthy) or self._unfenced_old_leader_may_write(healthy)):
            return
        if len(writable) != 1:
            self._liveness_reported = True
            self._add(
                "liveness",
                f"{sorted(healthy)} up and connected for {self.bound:g}s but writable nodes are {writable}",
            )
