"""The HA decisions: `decide(observation) -> actions`, a pure function.

Safety rules it enforces (property-tested in tests/unit/ha):
- Only the lease holder runs as a writable primary; promotion is always preceded by
  AcquireLeader in the same action list, so a lost race stops the list before Promote.
- A primary that cannot renew stops writes once `fence_deadline` has passed since its last
  successful renewal began (fence_deadline < ttl, see `pgkeel.document.Failover`).
- Quorum mode: a candidate is promoted only if it has heard from enough members of the
  last leader's synchronous set to prove it holds every acknowledged commit, and no other
  responder is ahead of it. Otherwise the cluster waits rather than lose data.
- Async mode: a candidate lagging the last known leader position by more than
  `max_lag_bytes` is not eligible.
"""

from __future__ import annotations

from pgkeel.dcs.base import ClusterView
from pgkeel.ha.model import (
    AcquireLeader,
    Action,
    Bootstrap,
    ClaimInitialize,
    ClearSwitchover,
    CloneFrom,
    EnsureSlots,
    EnsureSync,
    Fence,
    Follow,
    Observation,
    PeerProbe,
    Promote,
    Publish,
    Refuse,
    ReleaseLeader,
    RenewLeader,
    Rewind,
    StartPostgres,
    StopPostgres,
    Switchover,
    Wait,
)

BOOTSTRAP_PLACEHOLDER = "bootstrapping:"


def sync_standby_names(me: str, members: tuple[str, ...], quorum: int) -> str:
    """'ANY k ("a","b")' over every other configured member: a fixed set per leader."""
    others = [m for m in members if m != me]
    if not others or quorum <= 0:
        return ""
    return f"ANY {quorum} (" + ",".join(f'"{m}"' for m in others) + ")"


def others(o: Observation) -> tuple[str, ...]:
    return tuple(m for m in o.members if m != o.me)


def decide(o: Observation) -> list[Action]:
    if o.memory.refused:
        return [Refuse(reason=o.memory.refused)]
    if o.view is None:
        return _store_unreachable(o)
    view = o.view
    foreign = _foreign_data(o, view)
    if foreign:
        actions: list[Action] = [StopPostgres(mode="fast", reason=foreign)] if o.pg.running else []
        return [*actions, Refuse(reason=foreign)]
    if not o.pg.has_data:
        return _bootstrap(o, view)
    if view.initialize is None and o.pg.system_identifier:
        return [ClaimInitialize(reason="the store has no initialize key but this node holds data: claim it")]
    leader = view.leader
    if o.pg.running and o.pg.in_recovery is None:
        return _not_answering(o, view)
    if leader is not None and leader.holder == o.me:
        return _lead(o, view)
    if leader is not None:
        return _follow(o, view, leader.holder)
    return _elect(o, view)


def _not_answering(o: Observation, view: ClusterView) -> list[Action]:
    """Starting up or in recovery: its role is unknown, so only steps that need no SQL.

    A standby with no WAL source (fenced, or started during an election) may never become
    consistent, so it never answers: point it at the leader (a reload needs no SQL), and if it
    still does not come up, rewind it.
    """
    leader = view.leader
    if leader is not None and leader.holder == o.me:
        return [RenewLeader(), _publish(o, "starting"), Wait(reason="postgres is running but not answering yet")]
    if leader is not None:
        member = view.members.get(leader.holder)
        stalled = o.memory.not_streaming_since
        if o.memory.rewind_needed or (stalled is not None and o.now - stalled > o.settings.stream_failure_timeout):
            return [
                StopPostgres(mode="fast", rewind_after=True, reason=f"not answering: rejoin {leader.holder}"),
                _publish(o, "replica"),
            ]
        if member is not None and "host" in member.data:
            address = f"{member.data['host']}:{member.data['port']}"
            if o.pg.following != address:
                return [_publish(o, "replica"), Follow(leader=leader.holder, reason="stream from the leader")]
    return [_publish(o, "starting"), Wait(reason="postgres is running but not answering yet")]


def _foreign_data(o: Observation, view: ClusterView) -> str | None:
    init = view.initialize
    sysid = o.pg.system_identifier
    if not o.pg.has_data or not init or init.startswith(BOOTSTRAP_PLACEHOLDER) or sysid is None:
        return None
    if sysid != init:
        return (
            f"data directory belongs to another cluster (system identifier {sysid}, cluster has {init}); "
            "refusing to join. Move the data directory away to let this node clone the cluster."
        )
    return None


def _fence_due(o: Observation) -> bool:
    last = o.memory.last_renewal
    return last is None or o.now - last > o.settings.fence_deadline


def _store_unreachable(o: Observation) -> list[Action]:
    if o.pg.running and o.pg.in_recovery is False and _fence_due(o):
        return [Fence(reason="coordination store unreachable past the fence deadline: stop accepting writes")]
    return [Wait(reason="coordination store unreachable")]


def _member_state(o: Observation) -> str:
    if not o.pg.running:
        return "stopped"
    if o.pg.in_recovery:
        return "streaming" if o.pg.streaming else "recovering"
    return "running"


def _publish(o: Observation, role: str) -> Publish:
    return Publish(role=role, state=_member_state(o))


# --- bootstrap -------------------------------------------------------------------------------


def _bootstrap(o: Observation, view: ClusterView) -> list[Action]:
    if view.initialize is None:
        return [Bootstrap(reason="no cluster yet: this node claims the initialize key and runs initdb")]
    leader = view.leader
    if leader is None or view.initialize.startswith(BOOTSTRAP_PLACEHOLDER):
        return [_publish(o, "uninitialized"), Wait(reason="waiting for the bootstrap leader")]
    data = view.members.get(leader.holder)
    if data is None or data.data.get("role") != "primary" or data.data.get("state") != "running":
        return [_publish(o, "uninitialized"), Wait(reason=f"waiting for leader {leader.holder} to run")]
    return [_publish(o, "cloning"), CloneFrom(leader=leader.holder, reason=f"clone from leader {leader.holder}")]


# --- lease holder --------------------------------------------------------------------------------


def _lead(o: Observation, view: ClusterView) -> list[Action]:
    pg, s = o.pg, o.settings
    if not pg.running:
        down = o.memory.pg_down_since
        if down is not None and o.now - down > s.restart_timeout:
            return [
                ReleaseLeader(reason=f"postgres not back within {s.restart_timeout:g}s: hand over leadership"),
                _publish(o, "replica"),
            ]
        return [
            RenewLeader(),
            StartPostgres(standby=False, reason="leader's postgres is down: restart in place"),
        ]
    if pg.in_recovery:
        return [
            RenewLeader(),
            *_sync_actions(o, view),
            Promote(reason="holding the lease as a replica (switchover target or interrupted promotion)"),
            _publish(o, "primary"),
        ]
    actions: list[Action] = [RenewLeader(), _publish(o, "primary")]
    request = view.switchover
    if request and request.get("from") in (None, o.me) and request.get("to") != o.me:
        target = request.get("to") or _best_switchover_target(o, view)
        if target:
            return [*actions, Switchover(target=target, reason=f"switchover requested to {target}")]
        return [*actions, ClearSwitchover(reason="switchover requested but no healthy replica to take over")]
    if request and request.get("to") == o.me:
        actions.append(ClearSwitchover(reason="already the leader"))
    actions += _sync_actions(o, view)
    actions.append(EnsureSlots(names=others(o)))
    return actions


def _sync_actions(o: Observation, view: ClusterView) -> list[Action]:
    if o.settings.mode != "quorum":
        return []
    return [EnsureSync(names=others(o), quorum=o.settings.sync_standbys)]


def _best_switchover_target(o: Observation, view: ClusterView) -> str | None:
    best: tuple[int, str] | None = None
    for name in others(o):
        member = view.members.get(name)
        if member is None:
            continue
        d = member.data
        if d.get("role") != "replica" or d.get("state") != "streaming":
            continue
        key = (int(d.get("lsn") or 0), name)
        if best is None or key[0] > best[0] or (key[0] == best[0] and name < best[1]):
            best = key
    return best[1] if best else None


# --- following a leader ---------------------------------------------------------------------------


def _follow(o: Observation, view: ClusterView, leader: str) -> list[Action]:
    pg = o.pg
    member = view.members.get(leader)
    if member is None or "host" not in member.data:
        return [_publish(o, "replica"), Wait(reason=f"leader {leader} has not published its address yet")]
    address = f"{member.data['host']}:{member.data['port']}"
    if pg.running and pg.in_recovery is False:
        return [
            StopPostgres(mode="fast", rewind_after=True, reason=f"{leader} holds the lease: demote this primary"),
            _publish(o, "replica"),
        ]
    if not pg.running:
        if o.memory.rewind_needed or pg.was_primary:
            if member.data.get("role") != "primary" or member.data.get("state") != "running":
                return [_publish(o, "replica"), Wait(reason=f"waiting for leader {leader} to run before rewinding")]
            return [
                Rewind(leader=leader, reason=f"rejoin {leader}'s timeline with pg_rewind"),
                StartPostgres(standby=True, leader=leader),
                _publish(o, "replica"),
            ]
        return [
            StartPostgres(standby=True, leader=leader, reason=f"start as a replica of {leader}"),
            _publish(o, "replica"),
        ]
    if o.memory.rewind_needed:
        # Was a primary (fenced, released, switched over): its timeline may have diverged.
        return [
            StopPostgres(mode="fast", rewind_after=True, reason=f"rejoin {leader} through pg_rewind"),
            _publish(o, "replica"),
        ]
    actions: list[Action] = [_publish(o, "replica")]
    if pg.following != address:
        actions.append(Follow(leader=leader, reason=f"follow the new leader {leader}"))
        return actions
    stalled = o.memory.not_streaming_since
    if (
        not pg.streaming
        and stalled is not None
        and o.now - stalled > o.settings.stream_failure_timeout
        and member.data.get("state") == "running"
    ):
        return [
            StopPostgres(mode="fast", rewind_after=True, reason="not streaming from the leader: rewind"),
            _publish(o, "replica"),
        ]
    actions.append(EnsureSlots(names=others(o)))
    return actions


# --- election -----------------------------------------------------------------------------------------


def _elect(o: Observation, view: ClusterView) -> list[Action]:
    pg = o.pg
    request = view.switchover or {}
    if request.get("force") and request.get("to") == o.me and pg.running:
        return [
            AcquireLeader(reason="forced failover to this node"),
            ClearSwitchover(),
            *_sync_actions(o, view),
            Promote(reason="forced failover"),
        ]
    if pg.running and pg.in_recovery is False:
        return [AcquireLeader(reason="running as primary with no leader: reclaim the lease"), _publish(o, "primary")]
    if not pg.running:
        return [
            StartPostgres(standby=True, leader=None, reason="no leader: start read-only to take part in the election")
        ]
    if o.old_leader_alive:
        return [
            _publish(o, "replica"),
            Wait(reason="the lease expired but the old leader's postgres still runs as primary: not promoting"),
        ]
    verdict = eligibility(o, view)
    if verdict is not None:
        return [_publish(o, "replica"), Wait(reason=verdict)]
    return [
        AcquireLeader(reason="no leader: this node is the best eligible candidate"),
        *_sync_actions(o, view),
        Promote(reason="failover"),
        _publish(o, "primary"),
    ]


def _candidates(o: Observation) -> dict[str, PeerProbe]:
    me = PeerProbe(o.me, True, True, o.pg.timeline, o.pg.lsn, o.pg.system_identifier)
    found = {o.me: me}
    for name, probe in o.peers.items():
        if name == o.me or not probe.running or not probe.in_recovery:
            continue
        if probe.system_identifier and o.pg.system_identifier and probe.system_identifier != o.pg.system_identifier:
            continue
        found[name] = probe
    return found


def eligibility(o: Observation, view: ClusterView) -> str | None:
    """None when this node may promote now; otherwise the reason it must not."""
    candidates = _candidates(o)
    my_lsn = o.pg.lsn or 0
    for name, probe in candidates.items():
        lsn = probe.lsn or 0
        if lsn > my_lsn or (lsn == my_lsn and name < o.me):
            return f"{name} is a better candidate (LSN {lsn} vs {my_lsn})"
    if o.settings.mode == "quorum":
        sync = view.sync
        if sync and sync.get("leader") == o.me:
            return None  # the last leader itself: every acknowledged commit was made here
        if sync:
            members = tuple(sync.get("members") or ())
            quorum = int(sync.get("quorum") or 0)
            if o.me not in members:
                return f"not in the last leader's synchronous set {list(members)}"
            heard = [m for m in members if m in candidates]
            needed = len(members) - quorum + 1
            if len(heard) < needed:
                return (
                    f"quorum: heard from {len(heard)} of the synchronous set {list(members)}, need {needed} "
                    "to prove no acknowledged commit is missing; waiting"
                )
        return None
    last = _last_leader_lsn(view)
    if last is not None and last - my_lsn > o.settings.max_lag_bytes:
        return f"lagging the last leader position by {last - my_lsn} bytes (limit {o.settings.max_lag_bytes})"
    return None


def _last_leader_lsn(view: ClusterView) -> int | None:
    lsns = [int(m.data["lsn"]) for m in view.members.values() if m.data.get("role") == "primary" and m.data.get("lsn")]
    return max(lsns) if lsns else None


__all__ = ["BOOTSTRAP_PLACEHOLDER", "decide", "eligibility", "sync_standby_names"]
