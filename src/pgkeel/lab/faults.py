"""The faults, one per trial: inject, then restore the node the way an operator (or `pgkeel up`) would.

`inject` returns when the lab has done its part of the recovery (restarted agents, SIGCONT,
link up); the time it returns is where rejoin time is measured from. Every fault lasts longer
than the timer it is about: a dead agent stays dead for KILL_AGENT_S (ten TTLs), an absent
replica stays away until its slot is lost, a killed bootstrap stays dead past the claim timeout
(or, in every other bench trial, past its lease).

`SHAPES` says which cluster a fault needs (size, volume); `kill-bootstrap` builds its own cluster
per trial (pgkeel.lab.trial.run_bootstrap_trial), the others run on a cluster that is already up.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from pgkeel.ha.plan_global import BOOTSTRAP_CLAIM_TIMEOUT
from pgkeel.instance import slot_name_for
from pgkeel.lab.cluster import LabCluster
from pgkeel.lab.monitor import Monitor

FAULTS = (
    "kill-primary",
    "kill-postgres",
    "kill-agent",
    "pause-primary",
    "partition-primary",
    "switchover",
    "kill-primary-and-replica",
    "absent-replica",
    "kill-bootstrap",
)

# Faults after which another node must lead (the old primary cannot stay, or is asked to go).
# pause-primary is not one: a primary resumed before the election ended may take its lapsed lease back
# (`[elect.reclaim]`: nobody led meanwhile, its fence refused commits since the deadline), see verify().
FAILOVER_FAULTS = frozenset(
    {"kill-primary", "kill-agent", "partition-primary", "switchover", "kill-primary-and-replica"}
)

KILL_AGENT_S = 30.0  # a dead agent's primary is fenced inside postgres and replaced after the TTL
ABSENT_WAL_BYTES = 700 * 2**20  # written while a replica is down: over 3x max_slot_wal_keep_size at 1Gi
# A killed bootstrap stays dead past the claim timeout (the others must clear its claim and bootstrap
# themselves), or — every other bench trial — past the lease it took (it must resume its own claim).
BOOTSTRAP_DEAD_S = BOOTSTRAP_CLAIM_TIMEOUT + 5.0
BOOTSTRAP_SHORT_DEAD_S = 5.0  # > ttl (3 s): its bootstrap lease has expired
BOOTSTRAP_KILL_JITTER_S = 1.0  # the kill lands up to this long after `[bootstrap.initdb]` (initdb ≈ 0.7 s)
EMIT_CHUNK = 2**20  # WAL per pg_logical_emit_message call
ABSENT_MIN_S = 12.0  # and away longer than its member record lives (member_ttl, 10 s at the lab's timings)


@dataclass(frozen=True)
class Shape:
    instances: int = 3
    storage: str = "10Gi"  # max_slot_wal_keep_size = 20% of it
    own_cluster: bool = False  # every trial builds (and bootstraps) its own cluster


SHAPES: dict[str, Shape] = {
    "kill-primary-and-replica": Shape(instances=5),
    "absent-replica": Shape(storage="1Gi"),
    "kill-bootstrap": Shape(own_cluster=True),
}


def shape(fault: str) -> Shape:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
    return SHAPES.get(fault, Shape())


def inject(
    fault: str, lab: LabCluster, monitor: Monitor, primary: str, t_fault: float, details: dict[str, Any]
) -> None:
    """Inject `fault` on a healthy cluster led by `primary`; facts worth keeping go into `details`."""
    ttl = lab.timings.ttl
    if fault == "kill-primary":
        lab.kill_node(primary)
        monitor.wait_promoted(primary, t_fault, timeout=30)
        lab.ensure_agents()
    elif fault == "kill-postgres":
        lab.kill_postgres(primary)  # the agent lives on and restarts it in place
    elif fault == "kill-agent":
        lab.kill_agent(primary)
        # Ten TTLs: postgres refuses commits ~fence_deadline after the last renewal, a peer takes over after
        # the TTL, and the old primary (still running, fenced) must not acknowledge anything meanwhile.
        time.sleep(KILL_AGENT_S)
        details["promoted_while_dead"] = monitor.promoted(primary, t_fault)
        lab.ensure_agents()
    elif fault == "pause-primary":
        lab.pause(primary, signal.SIGSTOP)
        # Frozen until a new leader is elected (at least 2 TTLs, at most 30 s): a pause that ends mid-election
        # may legitimately end with the old leader reclaiming its own lease, which is not this fault.
        time.sleep(2 * ttl)
        details["promoted_while_paused"] = monitor.wait_promoted(primary, t_fault, timeout=30)
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
    elif fault == "kill-primary-and-replica":
        replica = best_replica(lab, primary)
        details["killed_replica"] = replica
        both = [primary, replica]
        for name in both:  # freeze both first: they fail at the same instant
            lab.pause(name, signal.SIGSTOP)
        for name in both:
            lab.kill_postgres(name)
            lab.kill_agent(name)
        monitor.wait_promoted(primary, t_fault, timeout=30)
        lab.ensure_agents()
    elif fault == "absent-replica":
        absent_replica(lab, primary, details)
    elif fault == "kill-bootstrap":
        raise ValueError("kill-bootstrap builds its own cluster: use pgkeel.lab.trial.run_bootstrap_trial")
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")


def best_replica(lab: LabCluster, primary: str) -> str:
    """The replica the primary reports furthest ahead (the one most likely to hold the newest commits)."""
    snap = lab.fetch(primary) or {}
    peers = {p.get("name"): p.get("flush_lsn") or 0 for p in snap.get("replication") or []}
    others = [n for n in lab.names if n != primary]
    return max(others, key=lambda n: (peers.get(n, 0), n))


def absent_replica(lab: LabCluster, primary: str, details: dict[str, Any]) -> None:
    """Crash a replica's node, write ABSENT_WAL_BYTES of WAL, checkpoint, restart it.

    The WAL is written with pg_logical_emit_message (non-transactional, 1 MiB each): real WAL the
    primary streams and must keep or recycle, without growing the database the re-clone copies.
    """
    replica = random.choice([n for n in lab.names if n != primary])
    details["replica"] = replica
    lab.kill_node(replica)
    t_killed = time.monotonic()
    slot = slot_name_for(replica)
    with psycopg.connect(lab.conninfo([primary], read_write=False), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        details["max_slot_wal_keep_size"] = _one(conn, "SELECT current_setting('max_slot_wal_keep_size')")
        start = _one(conn, "SELECT pg_current_wal_lsn()")
        written = 0
        while written < ABSENT_WAL_BYTES:
            for _ in range(32):
                conn.execute("SELECT pg_logical_emit_message(false, 'pgkeel-lab', repeat('x', %s))", (EMIT_CHUNK,))
            written = int(_one(conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (start,)))
        details["wal_written_bytes"] = written
        conn.execute("CHECKPOINT")
        row = conn.execute(
            "SELECT wal_status, restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
    details["slot_wal_status"] = row[0] if row else None  # 'lost': the primary no longer has the replica's WAL
    time.sleep(max(0.0, t_killed + ABSENT_MIN_S - time.monotonic()))
    details["absent_s"] = time.monotonic() - t_killed
    lab.ensure_agents()


def _one(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def verify(fault: str, lab: LabCluster, details: dict[str, Any], offsets: dict[str, int]) -> list[str]:
    """Fault-specific checks once the cluster is healthy again; returns what failed (empty: all held)."""
    problems: list[str] = []
    if fault == "pause-primary" and details.get("outcome") != "failover":
        primary = details.get("old_primary", "")
        if "elect.reclaim" in (details.get("rules") or {}).get(primary, []):
            details["outcome"] = "reclaimed"  # resumed before a peer was elected: took its own lapsed lease back
        else:
            problems.append(f"no other node took over from {primary} and it did not reclaim the lease")
    if fault == "absent-replica":
        replica = details["replica"]
        # The primary's agent re-creates a lost slot at once ("had lost its WAL: made afresh"), so the
        # slot's state after the checkpoint may already be the new one; either says the WAL was gone.
        logged = f"replication slot {slot_name_for(replica)} had lost its WAL"
        details["slot_lost_logged"] = any(logged in lab.logged_since(offsets, n) for n in lab.names if n != replica)
        if details.get("slot_wal_status") != "lost" and not details["slot_lost_logged"]:
            problems.append(
                f"the fault was too short: {replica}'s slot is {details.get('slot_wal_status')!r}, not 'lost', "
                "and no agent logged it lost"
            )
        aside = lab.aside_dir(replica)
        reported = [a.get("path") for a in (lab.fetch(replica, timeout=2.0) or {}).get("asides") or []]
        details["aside"] = str(aside) if aside.exists() else None
        details["asides_reported"] = reported
        if not aside.exists():
            problems.append(f"no aside copy at {aside} after the re-clone")
        elif str(aside) not in reported:
            problems.append(f"the aside copy {aside} is not in {replica}'s /status asides ({reported})")
        extra = sorted(str(p) for p in aside.parent.glob("data.old-*"))
        if extra:
            problems.append(f"more than one aside copy: {extra}")
    return problems


def operator_cleanup(fault: str, lab: LabCluster, details: dict[str, Any]) -> None:
    """What the operator does once a trial is judged: look at the aside copy, then remove it (it held
    nothing the cluster lacks), so the node's single aside slot is free for the next trial's re-clone."""
    if fault == "absent-replica" and details.get("replica"):
        aside = lab.aside_dir(details["replica"])
        if aside.exists():
            shutil.rmtree(aside)


__all__ = [
    "BOOTSTRAP_DEAD_S",
    "BOOTSTRAP_KILL_JITTER_S",
    "BOOTSTRAP_SHORT_DEAD_S",
    "FAILOVER_FAULTS",
    "FAULTS",
    "KILL_AGENT_S",
    "SHAPES",
    "Shape",
    "inject",
    "operator_cleanup",
    "shape",
    "verify",
]
