"""Who may promote when no one leads: candidate ranking and the proofs behind it (pure).

Invariants:
- Candidates rank by timeline first, then by the WAL position their postgres reports *now*
  (probed during this election, never a published snapshot); ties go to the higher failoverPriority,
  then the lower name. A member tagged noFailover never stands (it is still a witness).
- Quorum mode: a candidate promotes only if it heard from enough members of the last leader's
  synchronous set to prove it holds every acknowledged commit, and it is not behind any of them.
  No sync record means nothing can be proven.
- A peer that cannot reach the store is neither a candidate nor a witness: it cannot lead, and
  counting it would let it block everyone.
- Async mode: the reference position is the durable leader history, which outlives member records,
  and a reachable peer that may stand but still receives WAL is waited for (bounded by
  `attached_peer_wait`): its position is not final, and promoting past it would lose what only it got.
- A candidate on an older timeline than the last leader served on never promotes: PostgreSQL would
  name its new timeline after the newest history file it knows, reusing an ID that already exists
  with other contents, and then neither pg_rewind nor streaming can tell the two apart (Patroni
  applies the same rule).
- The old leader: "cannot tell whether it still writes" is never "dead", unless a fence that does
  not depend on its agent guarantees it stopped committing when its lease lapsed.
"""

from __future__ import annotations

from pgkeel.ha.model import Observation, OldLeader, PeerProbe
from pgkeel.ha.records import FenceKind, LeaderHistory
from pgkeel.ha.settings import Mode


def rank(probe: PeerProbe) -> tuple[int, int]:
    return (probe.timeline or 0, probe.lsn or 0)


def my_probe(o: Observation) -> PeerProbe:
    return PeerProbe(o.me, True, True, o.pg.timeline, o.pg.lsn, o.pg.system_identifier, True)


def is_last_leader(o: Observation, name: str, timeline: int | None) -> bool:
    """Nobody led after `name` (on `timeline`): the durable history (and in quorum mode the sync record)
    names it. One test for this node and for its peers, so that two candidates never each defer to
    the other (simulator seed 11605: a promotion that failed after writing the history but before the
    sync record left one node deferring to a "last leader" that did not count itself as one)."""
    cluster = o.cluster
    history = cluster.history if cluster else None
    if history is None or history.leader != name:
        return False
    if history.timeline is not None and (timeline or 0) < history.timeline - 1:
        return False
    sync = cluster.sync if cluster else None
    return o.settings.mode is not Mode.QUORUM or (sync is not None and sync.leader == name)


def last_leader_itself(o: Observation) -> bool:
    """Nobody led after this node."""
    return is_last_leader(o, o.me, o.pg.timeline)


def self_candidate(o: Observation) -> bool:
    """This node's data cannot have diverged from the last leader's, so it may stand (published on /status).

    A node that must rewind or re-clone may not — unless it *is* the last leader: then there is
    nothing newer to have diverged from, and refusing would leave a fenced sole survivor stuck."""
    if o.memory.reclone_needed:
        return False
    return not o.memory.rewind_needed or last_leader_itself(o)


def same_cluster(o: Observation, probe: PeerProbe) -> bool:
    """The peer's postgres is of this cluster (an unknown system identifier on either side is not a mismatch)."""
    sysid = o.pg.system_identifier
    return not (probe.system_identifier and sysid and probe.system_identifier != sysid)


def timeline_floor(history: LeaderHistory) -> int:
    """The oldest timeline a candidate may promote from: the one the last leader served on (written with
    its lease term), or one before a timeline only predicted by record_promotion (no term)."""
    return (history.timeline or 0) - (0 if history.term is not None else 1)


def behind_last_timeline(o: Observation) -> str | None:
    """Why this node's timeline is too old to promote from, or None.

    The history is first written just before pg_promote with the timeline the promotion will create
    (no term: a prediction that may never have come true), then by the leader while it serves (with
    its lease term: the timeline it really writes on). A candidate one timeline behind a prediction
    is what every replica is when that promotion failed, so it may stand."""
    history = o.cluster.history if o.cluster else None
    if history is None or history.timeline is None or history.leader == o.me:
        return None
    mine = o.pg.timeline or 0
    if mine >= timeline_floor(history):
        return None
    return (
        f"on timeline {mine}, behind timeline {history.timeline} of the last leader {history.leader}: "
        "promoting would reuse an existing timeline ID; waiting for a node that followed it "
        "(failover --force overrides)"
    )


def witnesses(o: Observation) -> dict[str, PeerProbe]:
    """This node and every peer whose postgres answered now as a detached standby of this cluster and that
    reaches the store: only their positions are final facts a proof may use."""
    found = {o.me: my_probe(o)}
    for name, probe in o.peers.items():
        if name == o.me or not probe.running or not probe.in_recovery or not probe.dcs_ok or not probe.detached:
            continue
        if not probe.candidate:  # it may have diverged: its position proves nothing, and it will not stand
            continue
        if same_cluster(o, probe):
            found[name] = probe
    return found


def attached_rival(o: Observation) -> str | None:
    """A reachable peer of this cluster that may stand and reaches the store but has not stopped receiving WAL."""
    for name, probe in sorted(o.peers.items()):
        if name == o.me or not probe.running or not probe.in_recovery or not probe.dcs_ok or probe.detached:
            continue
        if probe.candidate and same_cluster(o, probe):
            return name
    return None


def _waiting_for_attached(o: Observation) -> str | None:
    rival = attached_rival(o)
    since = o.memory.leaderless_since
    bound = o.settings.attached_peer_wait
    if rival is None or (since is not None and o.now - since >= bound):
        return None
    return f"{rival} still receives WAL, so its position is not final: waiting for it to detach (at most {bound:g}s)"


def fenced(o: Observation, name: str) -> bool:
    """A fence that does not depend on `name`'s agent stops its commits once its lease lapsed."""
    cluster = o.cluster
    if cluster is None:
        return False
    guaranteed = (FenceKind.EXTENSION, FenceKind.WATCHDOG)
    history = cluster.history
    if history is not None and history.leader == name and history.fence in guaranteed:
        return True
    record = cluster.members.get(name)
    return record is not None and record.fence in guaranteed


def running_primary_peer(o: Observation) -> str | None:
    """A peer of this cluster whose postgres runs as a primary and that must be left to reclaim the lease:
    its agent is alive and reaches the store (it will), or nothing fences it (promoting beside it would
    make two writers). A fenced primary whose agent is gone cannot commit: it does not block a failover."""
    for name, probe in sorted(o.peers.items()):
        if name == o.me or not probe.running or probe.in_recovery or not same_cluster(o, probe):
            continue
        if probe.dcs_ok or not fenced(o, name):
            return name
    return None


def old_leader_may_write(o: Observation) -> str | None:
    """Why the last leader's postgres might still acknowledge writes, or None when it cannot."""
    history = o.cluster.history if o.cluster else None
    if history is None or history.leader == o.me:
        return None
    if history.fence in (FenceKind.EXTENSION, FenceKind.WATCHDOG):
        # Its lease lapsed (no one holds it), so its fence deadline passed before that: it cannot commit.
        return None
    if o.old_leader is OldLeader.PRIMARY:
        return f"the lease expired but {history.leader}'s postgres still runs as a primary (no fence): not promoting"
    if o.old_leader in (OldLeader.UNKNOWN, OldLeader.NOT_ASKED):
        return (
            f"cannot tell whether {history.leader}'s postgres still accepts writes and nothing fences it; "
            "waiting (failover --force overrides)"
        )
    return None


def eligibility(o: Observation) -> str | None:
    """None when this node may promote now; otherwise the reason it must not."""
    if o.me not in o.members:
        return "not a member any more (a scaling removed it from the store's membership): never promoted"
    if o.me in o.settings.no_failover:
        return "tagged noFailover (or failoverPriority 0) in spec.members: never promoted automatically"
    if not self_candidate(o):
        return "this node's data may have diverged from the last leader's: not a candidate until it rejoins"
    behind = behind_last_timeline(o)
    if behind is not None:
        return behind
    primary = running_primary_peer(o)
    if primary is not None:
        return f"{primary} runs as a primary: it reclaims the lease"
    candidates = witnesses(o)
    mine = rank(candidates[o.me])
    # The last leader holds every commit it acknowledged: nobody is better.
    others = {} if last_leader_itself(o) else {n: p for n, p in candidates.items() if n != o.me}
    for name, probe in others.items():
        theirs = rank(probe)
        if name in o.settings.no_failover:
            # It never stands. Ahead of this node it still matters where its position is part of a proof:
            # in quorum mode a synchronous-set member ahead may hold commits this node lacks.
            sync = o.cluster.sync if o.cluster else None
            if o.settings.mode is Mode.QUORUM and theirs > mine and sync is not None and name in sync.members:
                return f"{name} (noFailover) is ahead (timeline/LSN {theirs} vs {mine}) and in the synchronous set"
            continue
        if theirs > mine or (theirs == mine and (is_last_leader(o, name, probe.timeline) or _wins_tie(o, name))):
            return f"{name} is a better candidate (timeline/LSN {theirs} vs {mine})"
    if o.settings.mode is Mode.QUORUM:
        return _quorum_proof(o, candidates)
    return _waiting_for_attached(o) or _lag_bound(o)


def _wins_tie(o: Observation, name: str) -> bool:
    """Equally up to date: the higher failoverPriority stands, then the lower name (HASettings)."""
    s = o.settings
    return (s.priority(name), o.me) > (s.priority(o.me), name)


def _quorum_proof(o: Observation, candidates: dict[str, PeerProbe]) -> str | None:
    sync = o.cluster.sync if o.cluster else None
    if sync is None:
        return "quorum: the store holds no synchronous-set record, so no candidate can prove it has every commit"
    if sync.leader == o.me:
        return None  # the last leader itself: every acknowledged commit was made here
    if o.me not in sync.members:
        return f"not in the last leader's synchronous set {list(sync.members)}"
    heard = [m for m in sync.members if m in candidates or behind_me(o, m)]
    if len(heard) < sync.needed:
        return (
            f"quorum: heard from {len(heard)} of the synchronous set {list(sync.members)}, need {sync.needed} "
            "to prove no acknowledged commit is missing; waiting"
        )
    return None


def behind_me(o: Observation, name: str) -> bool:
    """A synchronous-set member that answered now as a detached standby of this cluster, not ahead of this node.

    Detached (it no longer receives WAL), its position bounds everything it ever acknowledged to the
    last leader, so it proves it holds nothing this node lacks, even when it may not stand itself (a
    stalled replica waiting for a rewind, one that cannot reach the store). Still attached, its
    position is only a snapshot: a paused old primary that resumes can still complete a commit it
    wrote before its fence deadline, once this standby confirms it (simulator seed 5512)."""
    probe = o.peers.get(name)
    if probe is None or name == o.me or not probe.running or not probe.in_recovery or not probe.detached:
        return False
    return same_cluster(o, probe) and rank(probe) <= rank(my_probe(o))


def _lag_bound(o: Observation) -> str | None:
    history = o.cluster.history if o.cluster else None
    reference = history.lsn if history is not None else None
    if reference is None:
        return None
    lag = reference - (o.pg.lsn or 0)
    if lag > o.settings.max_lag_bytes:
        return f"lagging the last leader position by {lag} bytes (limit {o.settings.max_lag_bytes})"
    return None
