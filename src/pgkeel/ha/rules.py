"""The HA decisions as an ordered table of named rules: `decide(observation) -> Decision`, pure.

Sections run in order — global, bootstrap, lead, follow, elect — and the first rule whose
predicate holds makes the plan. `pgkeel rules` prints the table; /status names the rule that fired.
Predicates and plans are the named functions in pgkeel.ha.plan_<section> (shared facts in
pgkeel.ha.facts); this file is the index.

Safety rules the table enforces (property-tested in tests/unit/ha, exercised by pgkeel.sim):
- Only the lease holder runs as a writable primary; promotion always follows AcquireLeader (or
  RenewLeader) in the same plan, so a lost race stops the plan before Promote.
- A primary that has not renewed within fence_deadline stops writes (inside postgres the fence
  already refuses commits; the plan restarts it read-only unless that extension holds the line).
- A lease holder whose data was last a standby comes back as a standby and promotes properly.
- Quorum: see pgkeel.ha.election and pgkeel.ha.sync; async: the lag bound uses durable history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pgkeel.ha import (
    facts,
    plan_drain,
    plan_elect,
    plan_follow,
    plan_global,
    plan_lead,
    plan_reinit,
    plan_restart,
)
from pgkeel.ha.actions import AnyAction
from pgkeel.ha.model import Decision, Observation

Predicate = Callable[[Observation], bool]
Plan = Callable[[Observation], list[AnyAction]]


# Each section applies only where its guard holds; a rule's own predicate adds what sets it apart.
SECTION_GUARDS: dict[str, Predicate] = {
    "preio": facts.always,
    "global": facts.always,
    "bootstrap": facts.always,
    "lead": facts.i_lead,
    "follow": facts.another_leads,
    "elect": facts.no_one_leads,
    "shutdown": facts.always,
    "drain": facts.i_lead,
}


@dataclass(frozen=True)
class Rule:
    name: str  # "<section>.<what>"
    when: Predicate
    plan: Plan
    why: str

    @property
    def section(self) -> str:
        return self.name.split(".", 1)[0]

    def matches(self, o: Observation) -> bool:
        return SECTION_GUARDS[self.section](o) and self.when(o)


RULES: tuple[Rule, ...] = (
    # --- global: before anything that needs the store or our role -------------------------------
    Rule(
        "global.refused", plan_global.refused, plan_global.refuse, "this node refused to join (foreign data): stay out"
    ),
    Rule(
        "global.store-down-failsafe",
        plan_global.failsafe_due,
        plan_global.confirm_failsafe,
        "the store is unreachable: keep serving while every other member promises not to lead (failsafe)",
    ),
    Rule(
        "global.store-down-fence",
        plan_global.store_down_and_fence_due,
        plan_global.fence,
        "the store is unreachable past the fence deadline: stop accepting writes",
    ),
    Rule(
        "global.store-down", plan_global.store_down, plan_global.wait_store, "the store is unreachable: change nothing"
    ),
    Rule(
        "global.own-bootstrap-claim",
        plan_global.own_bootstrap_claim,
        plan_global.resume_bootstrap,
        "our own bootstrap died: redo it",
    ),
    Rule(
        "global.failed-bootstrap-data",
        plan_global.failed_bootstrap_data,
        plan_global.set_aside_failed_bootstrap,
        "our own dead bootstrap's never-used data, while another cluster is recorded: set it aside and clone",
    ),
    Rule(
        "global.foreign-data",
        plan_global.foreign_data,
        plan_global.refuse_foreign,
        "the data belongs to another cluster: refuse",
    ),
    Rule(
        "global.renewal-overdue-fence",
        plan_global.renewal_overdue_without_extension,
        plan_global.fence,
        "a primary whose lease renewals failed past the fence deadline stops (no in-postgres fence to rely on)",
    ),
    Rule(
        "global.start-backoff",
        plan_global.start_backing_off,
        plan_global.wait_start_backoff,
        "postgres failed to start: wait 1, 2, 4 … 30 s before the next start (the leader keeps its lease meanwhile)",
    ),
    # --- bootstrap: no data directory yet ----------------------------------------------------------
    Rule(
        "bootstrap.backoff",
        plan_global.bootstrap_backing_off,
        plan_global.wait_bootstrap_backoff,
        "a failed bootstrap backs off",
    ),
    Rule(
        "bootstrap.restored",
        plan_global.restored_and_no_cluster_yet,
        plan_global.found_on_restored_data,
        "no cluster yet, and our data was restored from a backup for it: found the cluster on that data",
    ),
    Rule(
        "bootstrap.restored-recorded",
        plan_global.restore_recorded,
        plan_global.clear_restore_mark,
        "the store records the cluster our restored data founded: drop the restore marker",
    ),
    Rule(
        "bootstrap.wait-restore",
        plan_global.no_cluster_yet_restore_elsewhere,
        plan_global.wait_restore,
        "spec.bootstrap.fromBackup and no data here: never initdb, wait for the restored member",
    ),
    Rule(
        "bootstrap.initdb",
        plan_global.no_cluster_yet,
        plan_global.bootstrap,
        "no cluster yet: claim the initialize key and initdb",
    ),
    Rule(
        "bootstrap.stale-claim",
        plan_global.stale_bootstrap_claim,
        plan_global.clear_stale_claim,
        "a claim outlived its bootstrap",
    ),
    Rule(
        "bootstrap.wait-claim",
        plan_global.bootstrap_in_progress,
        plan_global.wait_bootstrap,
        "another node is bootstrapping",
    ),
    Rule(
        "bootstrap.wait-leader",
        plan_global.no_running_leader_to_clone,
        plan_global.wait_leader_to_clone,
        "nothing to clone yet",
    ),
    Rule("bootstrap.clone", plan_global.no_data, plan_global.clone, "clone the running leader"),
    Rule(
        "global.claim-initialize",
        plan_global.initialize_lost,
        plan_global.claim_initialize,
        "the store lost the initialize key",
    ),
    # --- lead: this node holds the lease -------------------------------------------------------------
    Rule(
        "lead.not-answering-too-long",
        plan_lead.leading_and_not_answering_too_long,
        plan_lead.release_and_fence,
        "postgres runs but has not answered for too long: hand over",
    ),
    Rule(
        "lead.not-answering",
        plan_lead.leading_and_not_answering,
        plan_lead.renew_and_wait,
        "postgres is starting: keep the lease",
    ),
    Rule(
        "lead.switchover-aborted",
        plan_lead.leading_after_aborted_switchover,
        plan_lead.restart_after_aborted_switchover,
        "a switchover stopped postgres but did not hand over: come back as a standby, then promote",
    ),
    Rule(
        "lead.down-too-long",
        plan_lead.leading_and_down_too_long,
        plan_lead.release,
        "postgres did not come back: hand over",
    ),
    Rule(
        "lead.restart-as-standby",
        plan_lead.leading_down_with_standby_data,
        plan_lead.restart_leader_as_standby,
        "the lease holder's data was last a standby: start it as one, then promote",
    ),
    Rule(
        "lead.restart-in-place",
        plan_lead.leading_and_down,
        plan_lead.restart_leader,
        "the leader's postgres is down: restart it",
    ),
    Rule(
        "lead.promote",
        plan_lead.leading_as_standby,
        plan_lead.promote_leader,
        "holding the lease as a standby: promote",
    ),
    Rule(
        "lead.restart-requested",
        plan_restart.leader_restart_requested,
        plan_restart.stop_leader_to_restart,
        "a restart in place was requested (one node, or a lowered standby floor): stop, keep the lease",
    ),
    Rule(
        "lead.switchover",
        plan_lead.switchover_requested,
        plan_lead.switchover,
        "a switchover was requested: hand over cleanly",
    ),
    Rule(
        "lead.switchover-no-target",
        plan_lead.switchover_without_target,
        plan_lead.clear_switchover,
        "a switchover was requested but no healthy replica can take over",
    ),
    Rule("lead.serve", plan_lead.leading, plan_lead.serve, "renew the lease, publish, keep the quorum rule and slots"),
    # --- follow: another node holds the lease ------------------------------------------------------
    Rule(
        "follow.demote",
        plan_follow.following_as_primary,
        plan_follow.demote,
        "another node holds the lease: stop this primary",
    ),
    Rule(
        "follow.leader-unpublished",
        plan_follow.leader_unpublished,
        plan_follow.wait_leader_address,
        "the leader has no address yet",
    ),
    Rule(
        plan_reinit.RULE,
        plan_reinit.reinit_requested,
        plan_reinit.reinit,
        "an operator asked to re-clone this replica: clone the running leader afresh, the old data kept aside",
    ),
    Rule(
        "follow.not-answering",
        plan_follow.following_and_not_answering,
        plan_follow.rejoin_unanswering,
        "a silent standby rejoins",
    ),
    Rule(
        "follow.reclone",
        plan_follow.reclone_due,
        plan_follow.reclone,
        "diverged beyond pg_rewind or the WAL is gone: clone afresh",
    ),
    Rule(
        "follow.reclone-blocked",
        plan_follow.reclone_blocked,
        plan_follow.wait_alarm,
        "a re-clone needs an operator: say so",
    ),
    Rule(
        "follow.wait-leader-to-rewind",
        plan_follow.rewind_due_but_leader_not_running,
        plan_follow.wait_leader_running,
        "pg_rewind needs a running leader",
    ),
    Rule(
        "follow.rewind-backoff",
        plan_follow.rewind_backing_off,
        plan_follow.wait_rewind_backoff,
        "pg_rewind failed to connect: retry",
    ),
    Rule(
        "follow.rewind",
        plan_follow.rewind_due,
        plan_follow.rewind,
        "was a primary: rejoin the leader's timeline with pg_rewind",
    ),
    Rule("follow.start", plan_follow.following_and_down, plan_follow.start_replica, "start as a replica of the leader"),
    Rule(
        "follow.rejoin",
        plan_follow.following_and_rewind_needed,
        plan_follow.stop_to_rewind,
        "may have diverged: stop to rewind",
    ),
    Rule(
        "follow.wal-gone",
        plan_follow.wal_source_lost,
        plan_follow.stop_to_reclone,
        "the leader no longer has our WAL: re-clone",
    ),
    Rule(
        "follow.restart-requested",
        plan_restart.replica_restart_requested,
        plan_restart.restart_replica,
        "a restart was requested (changed parameters): stop fast, start again as a replica of the leader",
    ),
    Rule("follow.repoint", plan_follow.following_elsewhere, plan_follow.repoint, "stream from the current leader"),
    Rule(
        "follow.stalled",
        plan_follow.stream_stalled,
        plan_follow.stop_to_rewind,
        "not streaming from the leader for too long: rejoin",
    ),
    Rule(
        "follow.stream",
        plan_follow.following,
        plan_follow.stream,
        "streaming: publish and keep the others' slots moving",
    ),
    # --- elect: no one holds the lease ---------------------------------------------------------------
    Rule(
        "elect.failsafe-promised",
        plan_elect.promised_not_to_lead,
        plan_elect.keep_promise,
        "this node promised the last leader, which cannot reach the store, not to lead: keep following it",
    ),
    Rule(
        "elect.forced",
        plan_elect.forced_failover_to_me,
        plan_elect.forced_promote,
        "an operator forced a failover to this node",
    ),
    Rule(
        "elect.superseded-primary",
        plan_elect.superseded_primary,
        plan_global.fence,
        "running as a primary although another node led since (cut off meanwhile): stop, never reclaim",
    ),
    Rule(
        "elect.reclaim",
        plan_elect.primary_without_leader,
        plan_elect.reclaim,
        "running as primary with no leader: reclaim",
    ),
    Rule(
        "elect.start-readonly",
        plan_elect.down_without_leader,
        plan_elect.start_readonly,
        "start read-only to take part",
    ),
    Rule("elect.not-answering", plan_elect.not_answering, plan_elect.wait_starting, "postgres is starting: wait"),
    Rule(
        "elect.paused",
        facts.paused,
        plan_elect.wait_paused,
        "maintenance mode: nobody takes over automatically",
    ),
    Rule(
        "elect.detach",
        plan_elect.still_attached,
        plan_elect.detach,
        "stop receiving WAL so positions compared are final",
    ),
    Rule(
        "elect.old-leader-may-write",
        plan_elect.old_leader_may_write,
        plan_elect.wait_old_leader,
        "the old primary may still write",
    ),
    Rule(
        "elect.ineligible",
        plan_elect.ineligible,
        plan_elect.wait_ineligible,
        "another candidate is better, or nothing is proven",
    ),
    Rule("elect.promote", facts.always, plan_elect.elect_and_promote, "the best eligible candidate takes the lease"),
)


PRE_IO_RULES: tuple[Rule, ...] = (
    Rule(
        "preio.lease-overdue",
        plan_global.lease_overdue_before_io,
        plan_global.fence,
        "before touching the store: a primary whose last renewal is nearly a TTL old stops first",
    ),
)

SHUTDOWN_RULES: tuple[Rule, ...] = (
    Rule("shutdown.stop", facts.always, plan_global.stop_node, "stop postgres, give the lease back, remove our record"),
)


# Before shutdown.stop, when the pod is going away (pgkeel.agent.drain): run as one plan, stopped at the first
# failure, so a hand-over never goes on past a step that did not succeed.
DRAIN_RULES: tuple[Rule, ...] = (
    Rule(
        "drain.hand-over",
        plan_drain.leading_with_a_successor,
        plan_drain.hand_over,
        "the leader's pod is going away: switch over to the best streaming replica before postgres stops",
    ),
)


def _first(rules: tuple[Rule, ...], o: Observation) -> Decision | None:
    for rule in rules:
        if rule.matches(o):
            return Decision(rule.name, tuple(rule.plan(o)))
    return None


def precheck(o: Observation) -> Decision | None:
    """The one decision taken before the store is read (o.cluster is the previous loop's view)."""
    return _first(PRE_IO_RULES, o)


def shutdown(o: Observation) -> Decision:
    decision = _first(SHUTDOWN_RULES, o)
    assert decision is not None
    return decision


def drain(o: Observation) -> Decision | None:
    """Told to stop: the hand-over to run first, or None (not leading, or nobody can take over)."""
    return _first(DRAIN_RULES, o)


ALL_RULES: tuple[Rule, ...] = PRE_IO_RULES + RULES + DRAIN_RULES + SHUTDOWN_RULES


def decide(o: Observation) -> Decision:
    decision = _first(RULES, o)
    assert decision is not None, "the table ends with a rule that always matches"
    return decision


def table() -> list[tuple[str, str]]:
    """(name, why) for every rule, in order: what `pgkeel rules` prints."""
    return [(r.name, r.why) for r in ALL_RULES]


def rules_markdown() -> str:
    lines = ["# HA rules", "", "Generated by `pgkeel rules --markdown`; first match wins.", ""]
    section = None
    for rule in ALL_RULES:
        if rule.section != section:
            section = rule.section
            lines += ["", f"## {section}", "", "| rule | why |", "|---|---|"]
        lines.append(f"| `{rule.name}` | {rule.why} |")
    return "\n".join(lines) + "\n"
