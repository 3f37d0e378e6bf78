"""Named scenarios: a fixed fault schedule against a fixed seed, and what must come of it.

Each function returns the RunResult; tests/unit/sim/test_sim_scenarios.py asserts on it and
`pgkeel sim --scenario NAME --transcript` replays it. Targets such as "@primary" are resolved
when the fault begins (pgkeel.sim.faults.Faults.resolve), so a schedule does not depend on which
node happened to bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable

from pgkeel.ha.records import FenceKind
from pgkeel.ha.settings import HASettings, Mode
from pgkeel.sim.faults import Fault
from pgkeel.sim.runner import RunResult, config_for, run
from pgkeel.sim.world import SimConfig


def _config(nodes: int, mode: Mode, fence: FenceKind = FenceKind.EXTENSION, **settings: object) -> SimConfig:
    config = config_for(nodes, mode, fence)
    if settings:
        config.settings = HASettings(**{**config.settings.model_dump(), **settings})
    return config


def kill_primary_agent(mode: Mode, seed: int = 1) -> RunResult:
    """kill -9 of only the primary's agent for 30 s; postgres keeps running (fenced by the extension)."""
    return run(seed, _config(3, mode), steps=300, faults=[Fault(15.0, "kill-agent", "@primary", duration=30.0)])


def five_nodes_lose_primary_and_best_replica(seed: int = 1) -> RunResult:
    """5 nodes, quorum, sync_standbys=2: the primary and its most advanced replica crash at once (40 s)."""
    faults = [
        Fault(20.0, "crash-node", "@primary", duration=40.0),
        Fault(20.0, "crash-node", "@replica", duration=40.0),
    ]
    return run(seed, _config(5, Mode.QUORUM, sync_standbys=2), steps=300, faults=faults)


def replica_past_slot_limit(seed: int = 1) -> RunResult:
    """A replica down for 60 s: the leader's slot for it passes max_slot_wal_keep_size and the WAL goes."""
    return run(seed, _config(3, Mode.ASYNC), steps=300, faults=[Fault(15.0, "crash-node", "@replica", duration=60.0)])


def bootstrap_killed(seed: int = 1) -> RunResult:
    """The bootstrapping node's machine dies during initdb (its claim is in the store), back after 20 s."""
    return run(
        seed, _config(3, Mode.QUORUM), steps=300, faults=[Fault(0.9, "crash-node", "@bootstrapper", duration=20.0)]
    )


def pause_primary(fence: FenceKind = FenceKind.EXTENSION, seed: int = 1) -> RunResult:
    """SIGSTOP of the whole primary (agent and postgres) for 20 s, far past the TTL, async mode."""
    return run(
        seed, _config(3, Mode.ASYNC, fence), steps=300, faults=[Fault(15.0, "pause-node", "@primary", duration=20.0)]
    )


def switchover_slow_checkpoint(seed: int = 1) -> RunResult:
    """A switchover while the primary's checkpoint takes 4 s (longer than the 0.75 s budget)."""
    faults = [Fault(14.0, "slow-checkpoint", "@primary", duration=4.0), Fault(15.0, "switchover", "@replica")]
    return run(seed, _config(3, Mode.QUORUM), steps=300, faults=faults)


def store_outage(mode: Mode = Mode.QUORUM, seed: int = 1, failsafe: bool = True, keep_world: bool = False) -> RunResult:
    """The whole store down for 60 s: with failsafe the primary serves on its peers' promises throughout."""
    config = _config(3, mode, failsafe=failsafe)
    return run(seed, config, steps=300, faults=[Fault(15.0, "store-down", duration=60.0)], keep_world=keep_world)


def primary_cut_from_store(mode: Mode = Mode.QUORUM, seed: int = 1, keep_world: bool = False) -> RunResult:
    """Only the primary loses the store (60 s); the others reach it and see the lease expire, but promised
    the primary, which still reaches them, not to lead: no failover, writes go on."""
    faults = [Fault(15.0, "cut-store", "@primary", duration=60.0)]
    return run(seed, _config(3, mode), steps=300, faults=faults, keep_world=keep_world)


def primary_isolated(mode: Mode = Mode.QUORUM, seed: int = 1, keep_world: bool = False) -> RunResult:
    """The primary loses the store and both peers (60 s): nobody can promise, so it fences and the others elect."""
    faults = [
        Fault(15.0, "cut-store", "@primary", duration=60.0),
        Fault(15.0, "cut-peer", "@primary", "@replica", duration=60.0),
        Fault(15.0, "cut-peer", "@primary", "@replica2", duration=60.0),
    ]
    return run(seed, _config(3, mode), steps=300, faults=faults, keep_world=keep_world)


def candidate_without_store(seed: int = 1) -> RunResult:
    """5 nodes, quorum: the primary crashes and its most advanced replica cannot reach the store (40 s).
    The three others are enough to prove the quorum (need 4 - 2 + 1 = 3 of the synchronous set)."""
    faults = [Fault(20.0, "crash-node", "@primary", duration=40.0), Fault(20.0, "cut-store", "@replica", duration=40.0)]
    return run(seed, _config(5, Mode.QUORUM, sync_standbys=2), steps=300, faults=faults)


def replica_behind_two_failovers(seed: int = 1, keep_world: bool = False) -> RunResult:
    """Async: the least advanced replica is cut off from its peers (20 s) across a failover, then the new
    primary crashes too (40 s). The cut-off replica, still on timeline 1, is alone with the store: promoting
    would create a second "timeline 2" that pg_rewind and streaming cannot tell from the real one."""
    faults = [
        Fault(14.0, "cut-peer", "@replica2", "@primary", duration=20.0),
        Fault(14.0, "cut-peer", "@replica2", "@replica", duration=20.0),
        Fault(15.0, "crash-node", "@primary", duration=200.0),
        Fault(24.0, "crash-node", "@primary", duration=40.0),
    ]
    config = _config(3, Mode.ASYNC, max_lag_bytes=100_000)  # only the timeline rule may stop it
    return run(seed, config, steps=900, faults=faults, keep_world=keep_world)


SCENARIOS: dict[str, Callable[[], RunResult]] = {
    "kill-primary-agent-async": lambda: kill_primary_agent(Mode.ASYNC),
    "kill-primary-agent-quorum": lambda: kill_primary_agent(Mode.QUORUM),
    "five-nodes-lose-two": five_nodes_lose_primary_and_best_replica,
    "replica-past-slot-limit": replica_past_slot_limit,
    "bootstrap-killed": bootstrap_killed,
    "pause-primary": pause_primary,
    "pause-primary-no-fence": lambda: pause_primary(FenceKind.NONE),
    "switchover-slow-checkpoint": switchover_slow_checkpoint,
    "store-outage": store_outage,
    "candidate-without-store": candidate_without_store,
    "replica-behind-two-failovers": replica_behind_two_failovers,
    "scale-three-five-three": lambda: scale_three_five_three(Mode.QUORUM),
}


def scale_three_five_three(mode: Mode = Mode.QUORUM, seed: int = 1, keep_world: bool = False) -> RunResult:
    """Scaling as `pgkeel apply` does it, with failovers on either side: 3 members (k 1) while pg-3 and pg-4 are
    not started yet; at 30 s they start and the membership becomes 5 (k 2); the primary crashes (40 s) and the
    five elect under ANY 2; a switchover to pg-0 and the membership back to 3 (k 1); pg-3 and pg-4 stop for good,
    and the primary crashes again (40 s): the three elect under ANY 1. Each change of set and k goes through
    the sync record's ordered transition while the writer runs."""
    three, five = "pg-0,pg-1,pg-2", "pg-0,pg-1,pg-2,pg-3,pg-4"
    faults = [
        Fault(0.0, "membership", three, "1"),
        Fault(0.0, "crash-node", "pg-3", duration=30.0),
        Fault(0.0, "crash-node", "pg-4", duration=30.0),
        Fault(30.0, "membership", five, "2"),
        Fault(60.0, "crash-node", "@primary", duration=40.0),
        Fault(110.0, "switchover", "pg-0"),
        Fault(120.0, "membership", three, "1"),
        Fault(125.0, "crash-node", "pg-3", duration=1000.0),
        Fault(125.0, "crash-node", "pg-4", duration=1000.0),
        Fault(140.0, "crash-node", "@primary", duration=40.0),
    ]
    config = _config(5, mode, FenceKind.EXTENSION, sync_standbys=1)
    return run(seed, config, steps=2000, faults=faults, keep_world=keep_world)


TAGS: dict[str, object] = {
    "no_failover": frozenset({"pg-1"}),
    "no_sync": frozenset({"pg-4"}),
    "failover_priority": {"pg-3": 5},
}


def tagged_members(mode: Mode = Mode.QUORUM, seed: int = 1, keep_world: bool = False) -> RunResult:
    """5 nodes with spec.members tags — pg-1 noFailover, pg-4 noSync, pg-3 failoverPriority 5 — and sync_standbys 1
    (two may be synchronous for any primary: with 2 of 2 one lost standby would stop writes): the primary crashes
    (40 s), then the next one too (40 s)."""
    faults = [
        Fault(20.0, "crash-node", "@primary", duration=40.0),
        Fault(70.0, "crash-node", "@primary", duration=40.0),
    ]
    config = _config(5, mode, FenceKind.EXTENSION, sync_standbys=1, **TAGS)
    return run(seed, config, steps=600, faults=faults, keep_world=keep_world)
