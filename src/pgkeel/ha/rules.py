"""The HA decisions as an ordered table of named rules: `decide(observation) -> Decision`, pure.

Sections run in order — global, bootstrap, lead, follow, elect — and the first rule whose
predicate holds makes the plan. `pgkeel rules` prints the table; /status names the rule that fired.
Predicates and plans are the named functions in pgkeel.ha.plans; this file is the index.

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

from pgkeel.ha import plans
from pgkeel.ha.model import AnyAction, Decision, Observation

Predicate = Callable[[Observation], bool]
Plan = Callable[[Observation], list[AnyAction]]


# Each section applies only where its guard holds; a rule's own predicate adds what sets it apart.
SECTION_GUARDS: dict[str, Predicate] = {
    "preio": plans.always,
    "global": plans.always,
    "bootstrap": plans.always,
    "lead": plans.i_lead,
    "follow": plans.another_leads,
    "elect": plans.no_one_leads,
    "shutdown": plans.always,
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
    Rule("global.refused", plans.refused, plans.refuse, "this node refused to join (foreign data): stay out"),
    Rule(
        "global.store-down-fence",
        plans.store_down_and_fence_due,
        plans.fence,
        "the store is unreachable past the fence deadline: stop accepting writes",
    ),
    Rule("global.store-down", plans.store_down, plans.wait_store, "the store is unreachable: change nothing"),
    Rule(
        "global.own-bootstrap-claim",
        plans.own_bootstrap_claim,
        plans.resume_bootstrap,
        "our own bootstrap died: redo it",
    ),
    Rule(
        "global.foreign-data", plans.foreign_data, plans.refuse_foreign, "the data belongs to another cluster: refuse"
    ),
    Rule(
        "global.renewal-overdue-fence",
        plans.renewal_overdue_without_extension,
        plans.fence,
        "a primary whose lease renewals failed past the fence deadline stops (no in-postgres fence to rely on)",
    ),
    # --- bootstrap: no data directory yet ----------------------------------------------------------
    Rule(
        "bootstrap.backoff", plans.bootstrap_backing_off, plans.wait_bootstrap_backoff, "a failed bootstrap backs off"
    ),
    Rule(
        "bootstrap.initdb", plans.no_cluster_yet, plans.bootstrap, "no cluster yet: claim the initialize key and initdb"
    ),
    Rule(
        "bootstrap.stale-claim", plans.stale_bootstrap_claim, plans.clear_stale_claim, "a claim outlived its bootstrap"
    ),
    Rule("bootstrap.wait-claim", plans.bootstrap_in_progress, plans.wait_bootstrap, "another node is bootstrapping"),
    Rule("bootstrap.wait-leader", plans.no_running_leader_to_clone, plans.wait_leader_to_clone, "nothing to clone yet"),
    Rule("bootstrap.clone", plans.no_data, plans.clone, "clone the running leader"),
    Rule("global.claim-initialize", plans.initialize_lost, plans.claim_initialize, "the store lost the initialize key"),
    # --- lead: this node holds the lease -------------------------------------------------------------
    Rule(
        "lead.not-answering-too-long",
        plans.leading_and_not_answering_too_long,
        plans.release_and_fence,
        "postgres runs but has not answered for too long: hand over",
    ),
    Rule(
        "lead.not-answering",
        plans.leading_and_not_answering,
        plans.renew_and_wait,
        "postgres is starting: keep the lease",
    ),
    Rule(
        "lead.switchover-aborted",
        plans.leading_after_aborted_switchover,
        plans.restart_after_aborted_switchover,
        "a switchover stopped postgres but did not hand over: come back as a standby, then promote",
    ),
    Rule("lead.down-too-long", plans.leading_and_down_too_long, plans.release, "postgres did not come back: hand over"),
    Rule(
        "lead.restart-as-standby",
        plans.leading_down_with_standby_data,
        plans.restart_leader_as_standby,
        "the lease holder's data was last a standby: start it as one, then promote",
    ),
    Rule(
        "lead.restart-in-place",
        plans.leading_and_down,
        plans.restart_leader,
        "the leader's postgres is down: restart it",
    ),
    Rule("lead.promote", plans.leading_as_standby, plans.promote_leader, "holding the lease as a standby: promote"),
    Rule(
        "lead.switchover", plans.switchover_requested, plans.switchover, "a switchover was requested: hand over cleanly"
    ),
    Rule(
        "lead.switchover-no-target",
        plans.switchover_without_target,
        plans.clear_switchover,
        "a switchover was requested but no healthy replica can take over",
    ),
    Rule("lead.serve", plans.leading, plans.serve, "renew the lease, publish, keep the quorum rule and slots"),
    # --- follow: another node holds the lease ------------------------------------------------------
    Rule("follow.demote", plans.following_as_primary, plans.demote, "another node holds the lease: stop this primary"),
    Rule(
        "follow.leader-unpublished",
        plans.leader_unpublished,
        plans.wait_leader_address,
        "the leader has no address yet",
    ),
    Rule(
        "follow.not-answering", plans.following_and_not_answering, plans.rejoin_unanswering, "a silent standby rejoins"
    ),
    Rule(
        "follow.reclone", plans.reclone_due, plans.reclone, "diverged beyond pg_rewind or the WAL is gone: clone afresh"
    ),
    Rule("follow.reclone-blocked", plans.reclone_blocked, plans.wait_alarm, "a re-clone needs an operator: say so"),
    Rule(
        "follow.wait-leader-to-rewind",
        plans.rewind_due_but_leader_not_running,
        plans.wait_leader_running,
        "pg_rewind needs a running leader",
    ),
    Rule(
        "follow.rewind-backoff",
        plans.rewind_backing_off,
        plans.wait_rewind_backoff,
        "pg_rewind failed to connect: retry",
    ),
    Rule("follow.rewind", plans.rewind_due, plans.rewind, "was a primary: rejoin the leader's timeline with pg_rewind"),
    Rule("follow.start", plans.following_and_down, plans.start_replica, "start as a replica of the leader"),
    Rule("follow.rejoin", plans.following_and_rewind_needed, plans.stop_to_rewind, "may have diverged: stop to rewind"),
    Rule("follow.wal-gone", plans.wal_source_lost, plans.stop_to_reclone, "the leader no longer has our WAL: re-clone"),
    Rule("follow.repoint", plans.following_elsewhere, plans.repoint, "stream from the current leader"),
    Rule(
        "follow.stalled",
        plans.stream_stalled,
        plans.stop_to_rewind,
        "not streaming from the leader for too long: rejoin",
    ),
    Rule("follow.stream", plans.following, plans.stream, "streaming: publish and keep the others' slots moving"),
    # --- elect: no one holds the lease ---------------------------------------------------------------
    Rule(
        "elect.forced", plans.forced_failover_to_me, plans.forced_promote, "an operator forced a failover to this node"
    ),
    Rule(
        "elect.superseded-primary",
        plans.superseded_primary,
        plans.fence,
        "running as a primary although another node led since (cut off meanwhile): stop, never reclaim",
    ),
    Rule("elect.reclaim", plans.primary_without_leader, plans.reclaim, "running as primary with no leader: reclaim"),
    Rule("elect.start-readonly", plans.down_without_leader, plans.start_readonly, "start read-only to take part"),
    Rule("elect.not-answering", plans.not_answering, plans.wait_starting, "postgres is starting: wait"),
    Rule("elect.detach", plans.still_attached, plans.detach, "stop receiving WAL so positions compared are final"),
    Rule(
        "elect.old-leader-may-write",
        plans.old_leader_may_write,
        plans.wait_old_leader,
        "the old primary may still write",
    ),
    Rule(
        "elect.ineligible", plans.ineligible, plans.wait_ineligible, "another candidate is better, or nothing is proven"
    ),
    Rule("elect.promote", plans.always, plans.elect_and_promote, "the best eligible candidate takes the lease"),
)


PRE_IO_RULES: tuple[Rule, ...] = (
    Rule(
        "preio.lease-overdue",
        plans.lease_overdue_before_io,
        plans.fence,
        "before touching the store: a primary whose last renewal is nearly a TTL old stops first",
    ),
)

SHUTDOWN_RULES: tuple[Rule, ...] = (
    Rule("shutdown.stop", plans.always, plans.stop_node, "stop postgres, give the lease back, remove our record"),
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


ALL_RULES: tuple[Rule, ...] = PRE_IO_RULES + RULES + SHUTDOWN_RULES


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
