"""One node's agent in the simulator: the real loop — precheck, observe, decide, execute, remember.

Invariant: the agent's choices are exactly pgkeel.ha.rules (precheck/decide) and its memory only
ever comes from pgkeel.ha.memory.remember, as in pgkeel.ha.loop.Agent. Each action is its own
event with its own duration, so a crash or a pause can fall between any two actions of a plan;
a crash loses the memory and a restart begins, as the real agent does, with a disarmed fence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from pgkeel.ha.actions import AnyAction
from pgkeel.ha.election import self_candidate
from pgkeel.ha.failsafe import refusal
from pgkeel.ha.membership import current_members, current_settings, known_members
from pgkeel.ha.memory import remember
from pgkeel.ha.model import (
    Decision,
    LeaseHeld,
    Memory,
    Observation,
    OldLeader,
    Outcome,
    PeerProbe,
    PgState,
    ReplicaFlush,
    Result,
)
from pgkeel.ha.records import Address, ClusterState, FenceKind
from pgkeel.ha.rules import decide, precheck
from pgkeel.sim.executor import Later, Step, perform
from pgkeel.sim.world import StoreError, World

PROBE_ROUND = 1.0  # max(1, 2 × dcs_timeout): the election round's deadline when a peer does not answer
OLD_LEADER_ROUND = 2.0


class SimAgent:
    def __init__(self, world: World, name: str) -> None:
        self.world = world
        self.name = name
        self.node = world.nodes[name]
        self.memory = Memory()
        self.last: Observation | None = None
        self.alive = True
        self.paused = False
        self.epoch = 0  # bumped by a crash: events of the dead process are dropped
        self.token = 0  # the current scheduled loop (a wake replaces it)
        self.busy = False
        self.deferred: list[Callable[[], None]] = []
        self.api: dict[str, object] = {}  # what GET /status would say (the last report)
        self.last_view: ClusterState | None = None  # the last successful store read (Observer.last_view)
        self.holding = False  # Promises.holding: set by every lease success, cleared when given up
        self.rules: Counter[str] = Counter()
        self._plan: tuple[Observation, Decision, list[Result], float] | None = None
        self._logged: tuple[str, tuple[str, ...], tuple[bool, ...]] | None = None

    # --- process lifecycle ----------------------------------------------------------------------
    def schedule(self, dt: float, fn: Callable[[], None]) -> None:
        epoch = self.epoch
        self.world.after(dt, lambda: self._fire(epoch, fn))

    def _fire(self, epoch: int, fn: Callable[[], None]) -> None:
        if epoch != self.epoch or not self.alive:
            return
        if self.paused or self.node.paused:
            self.deferred.append(fn)
            return
        fn()

    def boot(self, delay: float = 0.0) -> None:
        """A fresh agent process: empty memory, fence disarmed (prepare_fence), first loop soon."""
        self.alive, self.paused, self.busy, self.epoch = True, False, False, self.epoch + 1
        self.memory, self.last, self.api, self.deferred = Memory(), None, {}, []
        self.last_view, self.holding = None, False
        self.node.pg.fence_armed = False
        self._loop_in(delay)

    def crash(self) -> None:
        self.alive, self.busy, self.epoch, self.api, self.deferred = False, False, self.epoch + 1, {}, []

    def resume(self) -> None:
        self.paused = False
        pending, self.deferred = self.deferred, []
        for fn in pending:
            self.schedule(0.0, fn)

    def wake(self, target: str) -> None:
        """POST /wake on another node's API (HandOver): its next loop starts now if it is idle."""
        other = self.world.agents.get(target)
        idle = other is not None and other.alive and not other.paused and not other.busy
        if other is not None and idle and self.world.connected(self.name, target):
            other._loop_in(0.0)

    def _loop_in(self, dt: float) -> None:
        self.token += 1
        token = self.token
        self.schedule(dt, lambda: self._loop(token))

    # --- the loop ---------------------------------------------------------------------------------
    def _loop(self, token: int) -> None:
        if token != self.token or self.busy:
            return
        self.busy = True
        started = self.world.t
        spent = self._precheck()
        o, spent2 = self.observe()
        decision = decide(o)
        self.rules[decision.rule] += 1
        self._plan = (o, decision, [], started)
        self.schedule(spent + spent2, lambda: self._next(0))

    def _precheck(self) -> float:
        w = self.world
        o = self.observation(self.last.pg if self.last else PgState(), None, {}, OldLeader.NOT_ASKED, w.t)
        decision = precheck(o)
        if decision is None:
            return 0.0
        results: list[Result] = []
        spent = 0.0
        for action in decision.actions:
            step = perform(self, action, results)
            assert not isinstance(step, Later)
            results.append((action, step[0]))
            spent += step[1]
            if not step[0].ok:
                break
        self.memory = remember(o, decision, results)
        self._log(decision, results)
        return spent

    def _next(self, i: int) -> None:
        assert self._plan is not None
        _, decision, results, _ = self._plan
        if i >= len(decision.actions):
            self._finish()
            return
        action = decision.actions[i]
        self._run_step(i, action, perform(self, action, results))

    def _run_step(self, i: int, action: AnyAction, step: Step) -> None:
        if isinstance(step, Later):
            rest = step.rest
            self.schedule(step.after, lambda: self._run_step(i, action, rest()))
            return
        outcome, duration = step
        assert self._plan is not None
        self._plan[2].append((action, outcome))
        if not outcome.ok:
            self.schedule(duration, self._finish)
        else:
            self.schedule(duration, lambda: self._next(i + 1))

    def _finish(self) -> None:
        assert self._plan is not None
        o, decision, results, started = self._plan
        self.memory = remember(o, decision, results)
        won = any(isinstance(r, LeaseHeld) for _, r in results)
        if o.cluster is not None and o.cluster.leader_name not in (None, o.me) and not won:
            self.holding = False
        self.last = o
        self.api = {"dcs_ok": o.dcs_ok, "following": o.pg.following, "candidate": self_candidate(o)}
        self._log(decision, results)
        self.busy = False
        w = self.world
        wait = started + w.true_delay(self.name, w.settings.loop_wait) - w.t
        self._loop_in(max(0.0, wait))

    def _log(self, decision: Decision, results: list[Result]) -> None:
        kinds = tuple(a.kind for a in decision.actions)
        oks = tuple(r.ok for _, r in results)
        key = (decision.rule, kinds, oks)
        if key == self._logged:
            return
        self._logged = key
        parts = [f"{a.kind}={_short(r)}" for a, r in results]
        parts += [a.kind + "=-" for a in decision.actions[len(results) :]]
        self.world.log(f"{self.name} [{decision.rule}] {' '.join(parts)}")

    # --- observing --------------------------------------------------------------------------------
    def read_postgres(self) -> PgState:
        w, node, pg = self.world, self.node, self.node.pg
        if not pg.has_data:
            return PgState(has_data=False, running=pg.running)
        if pg.running and not w.answering(node):
            return PgState(has_data=True, running=True, in_recovery=None, following=pg.following)
        if pg.running:
            replication = tuple(ReplicaFlush(n, lsn) for n, lsn in sorted(w.sync_flushes(node).items()))
            return PgState(
                has_data=True,
                running=True,
                system_identifier=pg.sysid,
                in_recovery=pg.in_recovery,
                timeline=pg.timeline,
                lsn=pg.lsn,
                following=pg.following,
                streaming=pg.streaming,
                sync_standby_names=pg.sync_names,
                slots=frozenset(pg.slots),
                replication=replication,
                wal_source_lost=pg.in_recovery and not pg.streaming and pg.source_lost,
            )
        return PgState(
            has_data=True,
            running=False,
            system_identifier=pg.sysid,
            timeline=pg.timeline,
            lsn=pg.lsn,
            following=pg.following,
            was_primary=pg.was_primary,
        )

    def observe(self) -> tuple[Observation, float]:
        w = self.world
        spent = w.store_latency(self.name)
        try:
            cluster: ClusterState | None = w.store_call(self.name, lambda: w.store.view(w.t))
        except StoreError:
            cluster = None
        if cluster is not None:
            self.last_view = cluster
        pg = self.read_postgres()
        peers: dict[str, PeerProbe] = {}
        old = OldLeader.NOT_ASKED
        if cluster is not None and cluster.leader is None and pg.running and pg.in_recovery:
            peers, old, round_time = self.election_round(cluster)
            spent += round_time
        read_at = self.node.clock.local(w.t)
        return replace(self.observation(pg, cluster, peers, old, w.t + spent), store_read_at=read_at), spent

    def observation(
        self, pg: PgState, cluster: ClusterState | None, peers: dict[str, PeerProbe], old: OldLeader, at: float
    ) -> Observation:
        w = self.world
        now = self.node.clock.local(at)
        return Observation(
            me=self.name,
            members=current_members(w.config.names, cluster if cluster is not None else self.last_view),
            now=now,
            settings=current_settings(w.settings, cluster if cluster is not None else self.last_view),
            pg=pg,
            memory=self.memory,
            cluster=cluster,
            peers=peers,
            old_leader=old,
            fence=self.node.pg.fence_kind,
            address=self.node.address,
            api_url=f"http://{self.name}:8008",
            promised_until=self.node.promises.active_until(now),
        )

    def failsafe_request(self, leader: str) -> str | None:
        """POST /failsafe from `leader` (pgkeel.ha.loop.Agent.failsafe_promise): None when promised."""
        w, node = self.world, self.node
        pg = node.pg
        acting = self.memory.acting_primary or (pg.running and w.answering(node) and not pg.in_recovery)
        why = refusal(
            me=self.name, leader=leader, members=known_members(w.config.names, self.last_view), view=self.last_view,
            holding=self.holding, acting_primary=acting, acquiring=False,
        )
        try:
            node.promises.grant(leader, node.clock.local(w.t), why)
        except ValueError as exc:
            return str(exc)
        return None

    def election_round(self, cluster: ClusterState) -> tuple[dict[str, PeerProbe], OldLeader, float]:
        """pgkeel.ha.peers.PeerProber.election_round against the world as this node can see it."""
        w, me = self.world, self.name
        probes: dict[str, PeerProbe] = {}
        missing = False
        for name, record in sorted(cluster.members.items()):
            if name == me or record.address is None or name not in w.nodes:
                continue
            if name not in current_members(w.config.names, cluster):  # as pgkeel.ha.peers: members only
                continue
            probe = self._probe(name)
            if probe is None:
                missing = True
            else:
                probes[name] = probe
        spent = PROBE_ROUND if missing else 0.01
        history = cluster.history
        old = OldLeader.NOT_ASKED
        if history is not None and history.leader != me and history.fence is FenceKind.NONE:
            old = self._old_leader(history.address)
            if old is OldLeader.UNKNOWN:
                spent = max(spent, OLD_LEADER_ROUND)
        return probes, old, spent

    def _probe(self, name: str) -> PeerProbe | None:
        w = self.world
        node = w.nodes[name]
        if w.rng.random() < w.config.probe_loss or not w.connected(self.name, name) or not w.answering(node):
            return None
        agent = w.agents[name]
        api = agent.api if agent.alive and not agent.paused else {}
        pg = node.pg
        return PeerProbe(
            name=name,
            running=True,
            in_recovery=pg.in_recovery,
            timeline=pg.timeline,
            lsn=pg.lsn,
            system_identifier=pg.sysid,
            dcs_ok=api.get("dcs_ok") is True,
            detached="following" in api and api["following"] is None,
            candidate=api.get("candidate") is True,
        )

    def _old_leader(self, address: Address | None) -> OldLeader:
        w = self.world
        node = w.by_address(address)
        if node is None or w.rng.random() < w.config.probe_loss or not w.connected(self.name, node.name):
            return OldLeader.UNKNOWN
        if not node.pg.running:
            return OldLeader.NOT_PRIMARY  # connection refused: no postmaster
        if not w.answering(node):
            return OldLeader.UNKNOWN  # "the database system is starting up"
        return OldLeader.NOT_PRIMARY if node.pg.in_recovery else OldLeader.PRIMARY

    # --- postgres operations shared by handlers -------------------------------------------------------
    def configure(self, *, standby: bool, leader: Address | None, sync: str) -> None:
        """Instance.configure + reload: postgresql.auto.conf rewritten whole, standby.signal set or removed."""
        pg = self.node.pg
        pg.standby_signal = standby
        pg.following = str(leader) if standby and leader is not None else None
        if pg.following is None:
            pg.streaming, pg.received_from = False, None
        pg.sync_names = sync

    def stop(self, mode: str) -> None:
        w, pg = self.world, self.node.pg
        if not pg.running:
            return
        if mode == "fast" and w.answering(self.node) and not pg.in_recovery:
            pg.wal.append((pg.timeline or 1, -w.new_id()))  # the shutdown checkpoint
            w.ship_final(self.node)
        pg.crash()
        pg.clean_stop = mode == "fast"

    def start_postgres(self, recovery: float | None = None) -> float:
        w, pg = self.world, self.node.pg
        if recovery is None:
            recovery = w.rng.uniform(0.1, 0.6) if pg.clean_stop else w.rng.uniform(0.3, 4.0)
        pg.start(w.t, recovery)
        pg.clean_stop = False
        return recovery


def _short(outcome: Outcome) -> str:
    name = type(outcome).__name__
    extra = getattr(outcome, "result", None) or getattr(outcome, "ready", None)
    if extra is not None and extra is not True:
        name += f"({extra})"
    return name if outcome.ok else f"{name}!"
