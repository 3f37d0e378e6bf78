"""What the agent carries from one loop to the next: `remember(observation, decision, results) -> Memory`, pure.

Handlers never change memory; they return outcomes, and this function folds the observation and
those outcomes into the next Memory. So every rule that depends on history (backoffs, "three failed
starts → rewind", an aborted switchover, the last renewal) is visible to the property tests.
Every failed start of postgres backs off (1, 2, 4 … s, capped) and keeps its reason until postgres answers.
A restart request (pgkeel.ha.plan_restart) is done once a start of postgres succeeded after it.
"""

from __future__ import annotations

from dataclasses import replace

from pgkeel.ha.actions import (
    AcquireLeader,
    Bootstrap,
    CloneFrom,
    ConfirmFailsafe,
    Fence,
    Follow,
    HandOver,
    Promote,
    Reclone,
    RecordHistory,
    Refuse,
    ReleaseLeader,
    RenewLeader,
    Rewind,
    SetSyncNames,
    StartPostgres,
    StopPostgres,
    WriteSyncRecord,
)
from pgkeel.ha.model import (
    Blocked,
    Decision,
    LeaseHeld,
    Memory,
    Observation,
    Outcome,
    Result,
    Rewound,
    Started,
    SyncNamesSet,
    SyncSwitch,
)
from pgkeel.ha.sync import SyncRule
from pgkeel.instance import RewindOutcome

START_FAILURES_BEFORE_REWIND = 3
BOOTSTRAP_RETRY_MAX = 60.0
START_RETRY_MAX = 30.0
FAILOVER_RULES = ("elect.promote", "elect.forced")  # a Promote under these rules is a failover
REWIND_RETRY_MAX = 30.0
BLOCKED_RETRY = 30.0


def backoff(failures: int, cap: float) -> float:
    """1, 2, 4 … seconds, capped: a failing step neither spins nor gives up."""
    return float(min(cap, 2.0 ** max(0, failures - 1)))


def observed(m: Memory, o: Observation) -> Memory:
    """The part of memory that follows from what was seen, before anything was done."""
    pg, now = o.pg, o.now
    cluster = o.cluster
    leader = cluster.leader_name if cluster else None
    leading = leader == o.me
    acting_primary = m.acting_primary
    if pg.running and pg.in_recovery is False:
        acting_primary = True
    elif not pg.running or pg.in_recovery is True:
        acting_primary = False
    not_answering = pg.running and pg.in_recovery is None
    # Only a replica with a leader to stream from can be "stalled"; during an election nobody streams.
    stalled = cluster is not None and leader is not None and not leading and pg.running
    stalled = stalled and pg.in_recovery is not False and not pg.streaming
    claim = cluster.bootstrapping if cluster else None
    if pg.running and pg.in_recovery is not None:  # postgres answers: the start worked
        m = replace(m, failed_starts=0, retry_start_at=0.0, start_error=None)
    return replace(
        m,
        acting_primary=acting_primary,
        pg_down_since=(m.pg_down_since or now) if (cluster is not None and leading and not pg.running) else None,
        not_answering_since=(m.not_answering_since or now) if not_answering else None,
        not_streaming_since=(m.not_streaming_since or now) if stalled else None,
        claim_seen_since=(m.claim_seen_since or now) if (claim is not None and claim != o.me) else None,
        leaderless_since=(m.leaderless_since or now) if (cluster is not None and leader is None) else None,
        failsafe_since=m.failsafe_since if cluster is None and acting_primary else None,
    )


def remember(o: Observation, decision: Decision, results: list[Result]) -> Memory:
    """The next memory: the observation's facts, then each performed action's outcome, in order."""
    m = observed(o.memory, o)
    now = o.now
    if o.cluster is None and decision.rule.split(".", 1)[0] != "preio":  # preio decides before reading the store
        m = _count(m, store_errors=1)
    for action, outcome in results:
        match action:
            case AcquireLeader() | RenewLeader() if isinstance(outcome, LeaseHeld):
                m = replace(m, last_renewal=outcome.sent_at)
            case ConfirmFailsafe() if isinstance(outcome, LeaseHeld):
                m = replace(m, last_renewal=outcome.sent_at, failsafe_since=m.failsafe_since or now)
            case ReleaseLeader() if outcome.ok:
                m = replace(m, last_renewal=None, rewind_needed=True)
            case Fence() if outcome.ok:
                m = replace(m, last_renewal=None, rewind_needed=True, acting_primary=False)
            case Bootstrap():
                if outcome.ok:
                    m = replace(m, bootstrap_failures=0, retry_bootstrap_at=0.0, acting_primary=True, start_error=None)
                else:
                    failures = m.bootstrap_failures + 1
                    retry = now + backoff(failures, BOOTSTRAP_RETRY_MAX)
                    error = f"bootstrap failed: {outcome.error or 'no reason given'}"
                    m = replace(m, bootstrap_failures=failures, retry_bootstrap_at=retry, start_error=error)
            case StartPostgres() if isinstance(outcome, Rewound):
                m = _rewound(m, outcome, now)  # a directory an interrupted pg_rewind left: never started
            case StartPostgres():
                if outcome.ok:
                    m = replace(m, start_failures=0, not_streaming_since=None, switchover_aborted=False)
                    if o.restart_request is not None:  # this postmaster read the files as they are: request done
                        m = replace(m, restart_done=max(m.restart_done, o.restart_request.number))
                    if not isinstance(outcome, Started) or outcome.ready:
                        m = replace(m, failed_starts=0, retry_start_at=0.0, start_error=None)
                else:
                    m = _start_failed(m, outcome, now)
                if not outcome.ok and action.standby and action.leader is not None:
                    failures = m.start_failures + 1
                    if failures >= START_FAILURES_BEFORE_REWIND:
                        # e.g. its minimum recovery point is on a timeline the leader's history lacks
                        m = replace(m, start_failures=0, rewind_needed=True)
                    else:
                        m = replace(m, start_failures=failures)
            case StopPostgres() if outcome.ok:
                m = replace(m, acting_primary=False)
                if action.then == "rewind":
                    m = replace(m, rewind_needed=True)
                elif action.then == "reclone":
                    m = replace(m, reclone_needed=True)
            case Promote() if outcome.ok:
                m = replace(m, rewind_needed=False, acting_primary=True, switchover_aborted=False)
                if decision.rule in FAILOVER_RULES:
                    m = _count(m, failovers=1)
            case Follow() if outcome.ok:
                m = replace(m, not_streaming_since=None)
            case Rewind():
                m = _rewound(m, outcome, now)
            case CloneFrom() if o.reinit_request is not None:  # no data was left to re-clone: a clone is one
                m = replace(m, reinit_done=max(m.reinit_done, o.reinit_request.number))
            case Reclone():
                if o.reinit_request is not None:  # a clone tried after the operator's request carries it out
                    m = replace(m, reinit_done=max(m.reinit_done, o.reinit_request.number))
                if outcome.ok:
                    m = replace(
                        m, reclone_needed=False, rewind_needed=False, alarm=None, rewind_failures=0, start_failures=0
                    )
                elif isinstance(outcome, Blocked):
                    m = replace(m, alarm=outcome.error, retry_rewind_at=now + BLOCKED_RETRY)
                else:
                    failures = m.rewind_failures + 1
                    m = replace(m, rewind_failures=failures, retry_rewind_at=now + backoff(failures, REWIND_RETRY_MAX))
            case SetSyncNames() if isinstance(outcome, SyncNamesSet) and outcome.lsn is not None:
                rule = SyncRule.parse(action.names)
                if rule is not None:
                    m = replace(m, sync_switch=SyncSwitch(rule.members, rule.quorum, outcome.lsn))
            case WriteSyncRecord() if outcome.ok:
                m = replace(m, sync_switch=None)
            case HandOver() if outcome.ok:
                m = replace(m, last_renewal=None, rewind_needed=True, acting_primary=False)
                m = _count(m, switchovers=1)
            case RecordHistory() if outcome.ok:
                m = replace(m, history_written=action.history)
            case Refuse():
                m = replace(m, refused=action.reason)
            case _:
                pass
    if decision.rule == "lead.switchover" and _stopped_without_handover(results):
        # Postgres is down and the lease may or may not have moved: never restart it as a primary.
        m = replace(m, switchover_aborted=True, rewind_needed=True)
    return m


def _count(m: Memory, **events: int) -> Memory:
    c = m.counters
    return replace(m, counters=replace(c, **{k: getattr(c, k) + n for k, n in events.items()}))


def _start_failed(m: Memory, outcome: Outcome, now: float) -> Memory:
    """Any failed start (leader, replica, read-only, after a rewind) waits longer before the next one."""
    failures = m.failed_starts + 1
    m = replace(
        m,
        failed_starts=failures,
        retry_start_at=now + backoff(failures, START_RETRY_MAX),
        start_error=outcome.error or "postgres did not start",
    )
    return _count(m, start_failures=1)


def _rewound(m: Memory, outcome: Outcome, now: float) -> Memory:
    result = outcome.result if isinstance(outcome, Rewound) else RewindOutcome.FAILED
    if result in (RewindOutcome.REWOUND, RewindOutcome.NOT_NEEDED):
        return replace(m, rewind_needed=False, rewind_failures=0, retry_rewind_at=0.0, alarm=None)
    if result.needs_reclone:
        return replace(m, rewind_needed=False, reclone_needed=True, rewind_failures=0)
    # Unreachable (retry) or failed for another reason (retry, and say so): never a re-clone.
    failures = m.rewind_failures + 1
    alarm = None if result.retryable else f"pg_rewind failed ({result}); retrying, no re-clone without divergence"
    return replace(m, rewind_failures=failures, retry_rewind_at=now + backoff(failures, REWIND_RETRY_MAX), alarm=alarm)


def _stopped_without_handover(results: list[Result]) -> bool:
    stopped = any(isinstance(a, StopPostgres) and r.ok for a, r in results)
    handed = any(isinstance(a, HandOver) and r.ok for a, r in results)
    return stopped and not handed
