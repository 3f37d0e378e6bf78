"""One example per HA rule, named after it (test_<section>_<rule>): the table is the index, these are its cases.

test_every_rule_has_an_example (below) fails when a rule is added without one.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import replace

from builders import (
    NOW,
    SYSID,
    address,
    cluster,
    decide,
    first,
    kinds,
    obs,
    primary_pg,
    primary_record,
    probe,
    record,
    replica_pg,
    stopped_pg,
    with_memory,
)

from pgkeel.ha import actions, model
from pgkeel.ha.model import Memory, OldLeader, PgState, ReplicaFlush
from pgkeel.ha.records import (
    BOOTSTRAP_PLACEHOLDER,
    MAX_EVENTS,
    ClusterState,
    EventKind,
    FenceKind,
    HistoryEvent,
    LeaderHistory,
    MemberState,
    Pause,
    Role,
    SwitchoverRequest,
    SyncRecord,
    append_event,
    decode_events,
)
from pgkeel.ha.rules import ALL_RULES, drain, precheck, shutdown
from pgkeel.ha.settings import Mode
from pgkeel.ha.sync import sync_names

SYNC = SyncRecord("pg-0", ("pg-1", "pg-2"), 1, version=3)


def elect_obs(**kw: object) -> model.Observation:
    """pg-1, detached replica, no leader; pg-2 answered behind it; pg-0 (last leader) gone and fenced."""
    state = cluster(
        leader=None,
        members={"pg-2": record("pg-2", lsn=90)},
        sync=SYNC,
        history=LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.EXTENSION),
    )
    base: dict[str, object] = {
        "pg": replica_pg(streaming=False, following=None),
        "state": state,
        "peers": {"pg-2": probe("pg-2", lsn=90)},
    }
    base.update(kw)
    return obs(**base)  # type: ignore[arg-type]


# --- preio / shutdown -----------------------------------------------------------------------------


def test_preio_lease_overdue() -> None:
    o = obs(
        "pg-0", pg=primary_pg(), fence=FenceKind.WATCHDOG, memory=Memory(last_renewal=NOW - 2.9, acting_primary=True)
    )
    decision = precheck(o)
    assert decision is not None and kinds(decision) == ["Fence"]
    # with the extension, commits are already refused inside postgres: no stop before I/O
    assert precheck(obs("pg-0", pg=primary_pg(), memory=Memory(last_renewal=NOW - 2.9, acting_primary=True))) is None


def test_shutdown_stop() -> None:
    leader = shutdown(obs("pg-0", pg=primary_pg()))
    assert kinds(leader) == ["StopPostgres", "ReleaseLeader", "DeleteMember"]
    assert kinds(shutdown(obs("pg-1"))) == ["StopPostgres", "DeleteMember"]


def test_drain_hand_over() -> None:
    """A leader told to stop (its pod deleted or evicted) switches over to the best streaming replica first."""
    members = {"pg-0": primary_record("pg-0"), "pg-1": record("pg-1", lsn=90), "pg-2": record("pg-2", lsn=100)}
    d = drain(obs("pg-0", pg=primary_pg(), state=cluster(members=members)))
    assert d is not None and d.rule == "drain.hand-over"
    assert kinds(d) == ["RenewLeader", "Publish", "Checkpoint", "RenewLeader", "StopPostgres", "ConfirmReceived",
                        "HandOver", "ClearSwitchover"]
    hand_over = first(d, actions.HandOver)
    assert isinstance(hand_over, actions.HandOver) and hand_over.target == "pg-2"
    assert drain(obs("pg-1")) is None  # a replica just stops
    lonely = {"pg-0": primary_record("pg-0"), "pg-1": record("pg-1", state=MemberState.RECOVERING)}
    assert drain(obs("pg-0", pg=primary_pg(), state=cluster(members=lonely))) is None  # nobody to take over
    assert drain(obs("pg-0", pg=stopped_pg(was_primary=True))) is None  # postgres already down: just release


# --- global -----------------------------------------------------------------------------------------


def test_global_refused() -> None:
    d = decide(obs(memory=Memory(refused="foreign")))
    assert (d.rule, kinds(d)) == ("global.refused", ["Refuse"])


def test_global_store_down_fence() -> None:
    o = obs("pg-0", pg=primary_pg(), store_down=True, fence=FenceKind.NONE, memory=Memory(last_renewal=NOW - 1.6))
    d = decide(o)
    assert (d.rule, kinds(d)) == ("global.store-down-fence", ["Fence"])


def test_global_store_down() -> None:
    """Without failsafe: a primary waits out a store outage until its fence is due (then the rule above)."""
    fresh = decide(obs("pg-0", pg=primary_pg(), store_down=True, fence=FenceKind.NONE, failsafe=False))
    assert (fresh.rule, kinds(fresh)) == ("global.store-down", ["Wait"])
    # past the deadline but fenced inside postgres: keep running (no crash recovery), keep trying
    late = decide(obs("pg-0", pg=primary_pg(), store_down=True, memory=Memory(last_renewal=NOW - 5), failsafe=False))
    assert late.rule == "global.store-down" and "pgkeel_fence" in late.reason
    replica = decide(obs("pg-1", store_down=True))
    assert (replica.rule, kinds(replica)) == ("global.store-down", ["Wait"])


def test_global_store_down_failsafe() -> None:
    """Without the store, a primary that held the lease asks every other member to promise."""
    d = decide(obs("pg-0", pg=primary_pg(), store_down=True, fence=FenceKind.NONE))
    assert (d.rule, kinds(d)) == ("global.store-down-failsafe", ["ConfirmFailsafe"])
    action = first(d, actions.ConfirmFailsafe)
    assert isinstance(action, actions.ConfirmFailsafe) and action.members == ("pg-1", "pg-2")
    # a round failed and the fence is due: pgkeel_fence holds the line, a later round may resume writes ...
    late = decide(obs("pg-0", pg=primary_pg(), store_down=True, memory=Memory(last_renewal=NOW - 5)))
    assert late.rule == "global.store-down-failsafe"
    # ... a watchdog or restart fence stops postgres instead
    late_none = decide(obs("pg-0", pg=primary_pg(), store_down=True, fence=FenceKind.NONE,
                           memory=Memory(last_renewal=NOW - 1.6)))
    assert late_none.rule == "global.store-down-fence"
    # a primary that holds no lease (fenced, released, fresh agent) never asks
    never = decide(obs("pg-0", pg=primary_pg(), store_down=True, memory=Memory(last_renewal=None, acting_primary=True)))
    assert never.rule == "global.store-down"
    alone = decide(obs("pg-0", pg=primary_pg(), store_down=True, n=1))
    assert (alone.rule, first(alone, actions.ConfirmFailsafe).members) == ("global.store-down-failsafe", ())


def test_elect_failsafe_promised() -> None:
    """A node that promised the last leader keeps following it and never acquires."""
    state = cluster(leader=None, history=LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.EXTENSION))
    peers = {"pg-2": probe("pg-2", lsn=50)}
    promised = replace(obs("pg-1", state=state, peers=peers, pg=replica_pg(following=None)), promised_until=NOW + 2.0)
    d = decide(promised)
    assert (d.rule, kinds(d)) == ("elect.failsafe-promised", ["Publish", "Wait"])
    assert "promised pg-0" in d.reason
    stopped = decide(replace(promised, pg=stopped_pg()))
    start = first(stopped, actions.StartPostgres)
    assert isinstance(start, actions.StartPostgres) and start.standby and start.leader == address("pg-0")
    over = decide(replace(promised, promised_until=NOW - 0.1))
    assert over.rule != "elect.failsafe-promised"


def test_global_own_bootstrap_claim() -> None:
    state = cluster(leader=None, members={}, initialize=BOOTSTRAP_PLACEHOLDER + "pg-0")
    d = decide(obs("pg-0", pg=PgState(), state=state))
    assert d.rule == "global.own-bootstrap-claim"
    action = first(d, actions.Bootstrap)
    assert isinstance(action, actions.Bootstrap) and action.reuse_claim


def test_global_failed_bootstrap_data() -> None:
    """Lab kill-bootstrap after initdb: our own dead bootstrap left data, another node's cluster is recorded now.
    The data was never used: it goes aside (kept, not deleted) and the node clones; foreign data stays refused."""
    o = obs(pg=stopped_pg(system_identifier="123", unfinished_bootstrap=True))
    d = decide(o)
    assert (d.rule, kinds(d)) == ("global.failed-bootstrap-data", ["SetAside"])
    assert decide(obs(pg=stopped_pg(system_identifier="123"))).rule == "global.foreign-data"


def test_global_foreign_data() -> None:
    d = decide(obs(pg=stopped_pg(system_identifier="123")))
    assert d.rule == "global.foreign-data" and kinds(d) == ["Refuse"] and "another cluster" in d.reason


def test_global_claim_initialize() -> None:
    d = decide(obs(state=cluster(initialize=None)))
    assert d.rule == "global.claim-initialize"
    assert first(d, actions.ClaimInitialize) == actions.ClaimInitialize(system_identifier=SYSID, reason=d.reason)


def test_global_renewal_overdue_fence() -> None:
    """Reads work but renewals fail: past the fence deadline a primary with no in-postgres fence stops."""
    o = obs("pg-0", pg=primary_pg(), fence=FenceKind.WATCHDOG, memory=Memory(last_renewal=NOW - 1.6))
    assert decide(o).rule == "global.renewal-overdue-fence"
    # a primary whose role is unknown after it was one counts as a primary
    unknown = obs(
        "pg-0",
        pg=primary_pg(in_recovery=None),
        fence=FenceKind.NONE,
        memory=Memory(last_renewal=NOW - 1.6, acting_primary=True),
    )
    assert decide(unknown).rule == "global.renewal-overdue-fence"


# --- bootstrap ---------------------------------------------------------------------------------------


def test_global_start_backoff() -> None:
    """A failed start waits (replica, no-leader and leader alike); the leader keeps renewing meanwhile."""
    waiting = Memory(last_renewal=NOW - 0.2, failed_starts=2, retry_start_at=NOW + 2, start_error="FATAL: x")
    replica = decide(obs(pg=stopped_pg(), memory=waiting))
    assert replica.rule == "global.start-backoff" and "StartPostgres" not in kinds(replica)
    no_leader = decide(obs(pg=stopped_pg(), state=cluster(leader=None), memory=waiting))
    assert no_leader.rule == "global.start-backoff" and "StartPostgres" not in kinds(no_leader)
    leader = decide(obs("pg-0", pg=stopped_pg(was_primary=True), memory=waiting))
    assert (leader.rule, kinds(leader)) == ("global.start-backoff", ["RenewLeader", "Wait"])
    # past restart_timeout the leader hands over even while backing off; once the wait is over it starts again
    down = replace(waiting, pg_down_since=NOW - 60)
    assert decide(obs("pg-0", pg=stopped_pg(was_primary=True), memory=down)).rule == "lead.down-too-long"
    assert decide(obs(pg=stopped_pg(), memory=replace(waiting, retry_start_at=NOW))).rule == "follow.start"


def test_bootstrap_backoff() -> None:
    d = decide(
        obs(
            pg=PgState(),
            state=cluster(leader=None, members={}, initialize=None),
            memory=Memory(retry_bootstrap_at=NOW + 4),
        )
    )
    assert d.rule == "bootstrap.backoff" and "Bootstrap" not in kinds(d)


def test_bootstrap_initdb() -> None:
    d = decide(obs("pg-0", pg=PgState(), state=cluster(leader=None, members={}, initialize=None)))
    assert (d.rule, kinds(d)) == ("bootstrap.initdb", ["Bootstrap"])


def test_bootstrap_restored() -> None:
    """spec.bootstrap.fromBackup: the member whose data was restored claims and founds the cluster on it (no initdb
    over it), also when its bootstrap died midway (own claim resumed, still restored)."""
    empty = cluster(leader=None, members={}, initialize=None)
    restored = stopped_pg(system_identifier="777", restored=True)
    d = decide(obs("pg-0", pg=restored, state=empty, bootstrap_from_backup=True))
    assert (d.rule, kinds(d)) == ("bootstrap.restored", ["Bootstrap"])
    action = first(d, actions.Bootstrap)
    assert isinstance(action, actions.Bootstrap) and action.restored and not action.reuse_claim
    claimed = cluster(leader=None, members={}, initialize=BOOTSTRAP_PLACEHOLDER + "pg-0")
    d = decide(obs("pg-0", pg=restored, state=claimed, bootstrap_from_backup=True))
    resumed = first(d, actions.Bootstrap)
    assert d.rule == "global.own-bootstrap-claim" and isinstance(resumed, actions.Bootstrap) and resumed.restored
    # Without the marker, data with no cluster record is the store-lost case, not a restore.
    assert decide(obs("pg-0", pg=stopped_pg(system_identifier="777"), state=empty)).rule == "global.claim-initialize"


def test_bootstrap_wait_restore() -> None:
    """Members without data wait for the restored member to found the cluster, then clone: never initdb."""
    empty = cluster(leader=None, members={}, initialize=None)
    for me in ("pg-1", "pg-2"):
        d = decide(obs(me, pg=PgState(), state=empty, bootstrap_from_backup=True))
        assert d.rule == "bootstrap.wait-restore" and "Bootstrap" not in kinds(d)
    assert decide(obs("pg-1", pg=PgState(), state=empty)).rule == "bootstrap.initdb"  # no fromBackup: initdb


def test_bootstrap_restored_recorded() -> None:
    """The restore marker is dropped only once the store records that very data; foreign data keeps it."""
    recorded = cluster(leader="pg-0", initialize="777")
    d = decide(obs("pg-0", pg=primary_pg(system_identifier="777", restored=True), state=recorded))
    assert (d.rule, kinds(d)) == ("bootstrap.restored-recorded", ["ClearRestoreMark"])
    other = cluster(leader="pg-1", initialize="888")
    assert decide(obs("pg-0", pg=stopped_pg(system_identifier="777", restored=True), state=other)).rule == (
        "global.foreign-data"
    )


def test_bootstrap_stale_claim() -> None:
    state = cluster(leader=None, members={}, initialize=BOOTSTRAP_PLACEHOLDER + "pg-0")
    d = decide(obs(pg=PgState(), state=state, memory=Memory(claim_seen_since=NOW - 61)))
    assert (d.rule, kinds(d)) == ("bootstrap.stale-claim", ["ClearStaleClaim"])


def test_bootstrap_wait_claim() -> None:
    state = cluster(leader=None, members={}, initialize=BOOTSTRAP_PLACEHOLDER + "pg-0")
    d = decide(obs(pg=PgState(), state=state, memory=Memory(claim_seen_since=NOW - 5)))
    assert d.rule == "bootstrap.wait-claim" and "Wait" in kinds(d)


def test_bootstrap_wait_leader() -> None:
    state = cluster(members={"pg-0": record("pg-0", Role.PRIMARY, MemberState.STOPPED)})
    assert decide(obs(pg=PgState(), state=state)).rule == "bootstrap.wait-leader"


def test_bootstrap_clone() -> None:
    d = decide(obs(pg=PgState()))
    assert d.rule == "bootstrap.clone"
    clone = first(d, actions.CloneFrom)
    assert isinstance(clone, actions.CloneFrom) and clone.address == address("pg-0")


# --- lead ----------------------------------------------------------------------------------------------


def test_lead_not_answering_too_long() -> None:
    o = obs(
        "pg-0", pg=primary_pg(in_recovery=None), memory=Memory(last_renewal=NOW - 0.2, not_answering_since=NOW - 31)
    )
    d = decide(o)
    assert (d.rule, kinds(d)) == ("lead.not-answering-too-long", ["ReleaseLeader", "Fence"])


def test_lead_not_answering() -> None:
    d = decide(obs("pg-0", pg=primary_pg(in_recovery=None), memory=Memory(last_renewal=NOW - 0.2, acting_primary=True)))
    assert d.rule == "lead.not-answering" and kinds(d)[0] == "RenewLeader"


def test_lead_switchover_aborted() -> None:
    o = obs("pg-0", pg=stopped_pg(was_primary=True), memory=Memory(last_renewal=NOW - 0.2, switchover_aborted=True))
    d = decide(o)
    assert d.rule == "lead.switchover-aborted"
    start = first(d, actions.StartPostgres)
    assert isinstance(start, actions.StartPostgres) and start.standby  # never restart as a primary after an abort


def test_lead_down_too_long() -> None:
    o = obs("pg-0", pg=stopped_pg(was_primary=True), memory=Memory(last_renewal=NOW - 0.2, pg_down_since=NOW - 11))
    assert kinds(decide(o))[0] == "ReleaseLeader"
    assert decide(o).rule == "lead.down-too-long"


def test_lead_restart_as_standby() -> None:
    """The lease holder's data was last a standby (a candidate that crashed before pg_promote)."""
    d = decide(obs("pg-0", pg=stopped_pg(was_primary=False)))
    assert d.rule == "lead.restart-as-standby"
    start = first(d, actions.StartPostgres)
    assert isinstance(start, actions.StartPostgres) and start.standby and start.leader is None
    assert kinds(d)[0] == "RenewLeader"


def test_lead_restart_in_place() -> None:
    d = decide(obs("pg-0", pg=stopped_pg(was_primary=True)))
    assert d.rule == "lead.restart-in-place" and kinds(d) == ["RenewLeader", "StartPostgres"]
    start = first(d, actions.StartPostgres)
    assert isinstance(start, actions.StartPostgres) and not start.standby


def test_lead_promote() -> None:
    d = decide(obs("pg-0", pg=replica_pg(following=None)))
    assert d.rule == "lead.promote"
    assert kinds(d)[0] == "RenewLeader" and "Promote" in kinds(d)


def test_lead_restart_requested() -> None:
    o = replace(obs("pg-0", pg=primary_pg()), restart_request=model.RestartRequest(number=1, in_place=True))
    d = decide(o)
    assert d.rule == "lead.restart-requested" and kinds(d) == ["RenewLeader", "StopPostgres", "Publish"]
    # without in_place, the leader of three members keeps serving: `pgkeel restart` switches over first
    assert decide(replace(o, restart_request=model.RestartRequest(number=1))).rule == "lead.serve"


def test_lead_switchover() -> None:
    state = cluster(switchover=SwitchoverRequest(source="pg-0", target="pg-2"))
    d = decide(obs("pg-0", pg=primary_pg(), state=state))
    assert d.rule == "lead.switchover"
    assert kinds(d) == [
        "RenewLeader",
        "Publish",
        "Checkpoint",
        "RenewLeader",
        "StopPostgres",
        "ConfirmReceived",
        "HandOver",
        "ClearSwitchover",
    ]
    hand = first(d, actions.HandOver)
    assert isinstance(hand, actions.HandOver) and hand.target == "pg-2"


def test_lead_switchover_no_target() -> None:
    members = {"pg-0": primary_record(), "pg-1": record("pg-1", state=MemberState.RECOVERING)}
    state = cluster(members=members, switchover=SwitchoverRequest(source="pg-0", target="pg-1"))
    d = decide(obs("pg-0", pg=primary_pg(), state=state))
    assert d.rule == "lead.switchover-no-target" and "ClearSwitchover" in kinds(d)


def test_follow_reinit_requested() -> None:
    """An operator's re-clone (POST /reinit) runs the Reclone of follow.reclone: space checked, old data aside."""
    d = decide(replace(obs(), reinit_request=model.ReinitRequest(number=1)))
    assert d.rule == "follow.reinit-requested" and kinds(d) == ["Publish", "Reclone"]
    reclone = first(d, actions.Reclone)
    assert isinstance(reclone, actions.Reclone) and reclone.leader == "pg-0" and reclone.address == address("pg-0")


def test_lead_serve() -> None:
    d = decide(obs("pg-0", pg=primary_pg(sync_standby_names='ANY 1 ("pg-1","pg-2")', slots=frozenset({"pg_5"}))))
    assert d.rule == "lead.serve"
    assert kinds(d)[:2] == ["RenewLeader", "Publish"]
    assert "RecordHistory" in kinds(d) and "EnsureSlots" in kinds(d)
    drop = first(d, actions.DropSlots)
    assert isinstance(drop, actions.DropSlots) and drop.slots == ("pg_5",)  # a member no longer configured


# --- follow ---------------------------------------------------------------------------------------------


def test_follow_demote() -> None:
    d = decide(obs("pg-1", pg=primary_pg()))
    assert d.rule == "follow.demote"
    stop = first(d, actions.StopPostgres)
    assert isinstance(stop, actions.StopPostgres) and stop.then == "rewind"
    # cut off from its standbys, a fast stop would wait wal_sender_timeout (60 s) before the rewind
    assert stop.mode == "fast" and stop.escalate_after <= 10


def test_follow_leader_unpublished() -> None:
    d = decide(obs(state=cluster(members={"pg-1": record("pg-1")})))
    assert d.rule == "follow.leader-unpublished" and "Wait" in kinds(d)


def test_follow_not_answering() -> None:
    d = decide(obs(pg=replica_pg(in_recovery=None, following=None)))
    assert d.rule == "follow.not-answering" and "Follow" in kinds(d)


def test_follow_reclone() -> None:
    d = decide(obs(pg=stopped_pg(), memory=Memory(reclone_needed=True)))
    assert d.rule == "follow.reclone" and "Reclone" in kinds(d)


def test_follow_reclone_blocked() -> None:
    o = obs(pg=stopped_pg(), memory=Memory(reclone_needed=True, retry_rewind_at=NOW + 20, alarm="aside exists"))
    d = decide(o)
    assert d.rule == "follow.reclone-blocked" and d.reason == "aside exists"


def test_follow_wait_leader_to_rewind() -> None:
    state = cluster(members={"pg-0": record("pg-0", Role.PRIMARY, MemberState.STOPPED)})
    d = decide(obs(pg=stopped_pg(was_primary=True), state=state))
    assert d.rule == "follow.wait-leader-to-rewind"


def test_follow_rewind_backoff() -> None:
    d = decide(obs(pg=stopped_pg(was_primary=True), memory=Memory(retry_rewind_at=NOW + 3)))
    assert d.rule == "follow.rewind-backoff" and "Rewind" not in kinds(d)


def test_follow_rewind() -> None:
    d = decide(obs(pg=stopped_pg(was_primary=True)))
    assert d.rule == "follow.rewind" and kinds(d)[:2] == ["Rewind", "StartPostgres"]


def test_follow_start() -> None:
    d = decide(obs(pg=stopped_pg()))
    assert d.rule == "follow.start"
    start = first(d, actions.StartPostgres)
    assert isinstance(start, actions.StartPostgres) and start.standby and start.leader == address("pg-0")


def test_follow_rejoin() -> None:
    d = decide(obs(memory=Memory(rewind_needed=True)))
    assert d.rule == "follow.rejoin" and kinds(d)[0] == "StopPostgres"


def test_follow_wal_gone() -> None:
    d = decide(obs(pg=replica_pg(streaming=False, wal_source_lost=True)))
    assert d.rule == "follow.wal-gone"
    stop = first(d, actions.StopPostgres)
    assert isinstance(stop, actions.StopPostgres) and stop.then == "reclone"


def test_follow_restart_requested() -> None:
    d = decide(replace(obs(), restart_request=model.RestartRequest(number=1)))
    assert d.rule == "follow.restart-requested"
    assert kinds(d) == ["StopPostgres", "StartPostgres", "Publish"]
    start = first(d, actions.StartPostgres)
    assert isinstance(start, actions.StartPostgres) and start.standby and start.leader == address("pg-0")
    done = replace(obs(memory=Memory(restart_done=1)), restart_request=model.RestartRequest(number=1))
    assert decide(done).rule == "follow.stream"  # carried out already


def test_follow_repoint() -> None:
    d = decide(obs(pg=replica_pg(following="10.0.0.9:5432")))
    assert d.rule == "follow.repoint"
    follow = first(d, actions.Follow)
    assert isinstance(follow, actions.Follow) and follow.address == address("pg-0")


def test_follow_stalled() -> None:
    d = decide(obs(pg=replica_pg(streaming=False), memory=Memory(not_streaming_since=NOW - 11)))
    assert d.rule == "follow.stalled"


def test_follow_stream() -> None:
    d = decide(obs())
    assert d.rule == "follow.stream" and kinds(d) == ["Publish", "EnsureSlots"]


# --- elect --------------------------------------------------------------------------------------------


def test_elect_forced() -> None:
    o = elect_obs(state=cluster(leader=None, switchover=SwitchoverRequest(target="pg-1", force=True)))
    d = decide(o)
    assert d.rule == "elect.forced" and kinds(d)[0] == "AcquireLeader" and "Promote" in kinds(d)


def test_elect_reclaim() -> None:
    d = decide(obs("pg-0", pg=primary_pg(), state=cluster(leader=None)))
    assert (d.rule, kinds(d)) == ("elect.reclaim", ["AcquireLeader", "Publish"])
    ours = LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.EXTENSION)
    assert decide(obs("pg-0", pg=primary_pg(), state=cluster(leader=None, history=ours))).rule == "elect.reclaim"


def test_elect_superseded_primary() -> None:
    """Simulator seed 27: a primary cut off from the store while another led must not reclaim on its old timeline."""
    theirs = LeaderHistory("pg-1", address("pg-1"), 2, 500, 2, FenceKind.EXTENSION)
    d = decide(obs("pg-0", pg=primary_pg(), state=cluster(leader=None, history=theirs)))
    assert (d.rule, kinds(d)) == ("elect.superseded-primary", ["Fence"])


def test_elect_promote_the_fenced_last_leader_itself() -> None:
    """Simulator pause-primary-no-fence: the old primary, fenced after a pause, is the newest data: it may stand,
    and a peer that may not stand (it must rewind) is neither a better candidate nor a witness."""
    history = LeaderHistory("pg-1", address("pg-1"), 1, 100, 1, FenceKind.WATCHDOG)
    state = cluster(leader=None, members={}, sync=SyncRecord("pg-1", ("pg-0", "pg-2"), 1, version=4), history=history)
    o = elect_obs(state=state, memory=Memory(rewind_needed=True), peers={"pg-2": probe("pg-2", lsn=90)})
    assert decide(o).rule == "elect.promote"
    # pg-2 must rewind: not "a better candidate" — and not a witness either, so quorum cannot be proven here
    blocked = decide(elect_obs(peers={"pg-2": probe("pg-2", lsn=200, candidate=False)}))
    assert blocked.rule == "elect.ineligible" and "quorum: heard from 1" in blocked.reason
    assert decide(elect_obs(mode=Mode.ASYNC, peers={"pg-2": probe("pg-2", lsn=200, candidate=False)})).rule == (
        "elect.promote"
    )


def test_elect_start_readonly() -> None:
    d = decide(obs(pg=stopped_pg(), state=cluster(leader=None)))
    start = first(d, actions.StartPostgres)
    assert d.rule == "elect.start-readonly" and isinstance(start, actions.StartPostgres) and start.standby


def test_elect_not_answering() -> None:
    d = decide(obs(pg=replica_pg(in_recovery=None), state=cluster(leader=None)))
    assert d.rule == "elect.not-answering"


def test_elect_detach() -> None:
    d = decide(elect_obs(pg=replica_pg(streaming=True)))
    assert d.rule == "elect.detach"
    follow = first(d, actions.Follow)
    assert isinstance(follow, actions.Follow) and follow.address is None


def test_elect_old_leader_may_write() -> None:
    unfenced = LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.NONE)
    state = cluster(leader=None, members={}, sync=SYNC, history=unfenced)
    for answer in (OldLeader.PRIMARY, OldLeader.UNKNOWN):  # "cannot tell" is not "dead"
        d = decide(elect_obs(state=state, old_leader=answer))
        assert d.rule == "elect.old-leader-may-write", answer
    assert decide(elect_obs(state=state, old_leader=OldLeader.NOT_PRIMARY)).rule == "elect.promote"


def test_elect_ineligible() -> None:
    d = decide(elect_obs(peers={"pg-2": probe("pg-2", lsn=200)}))
    assert d.rule == "elect.ineligible" and "better candidate" in d.reason


def test_elect_member_tags_no_failover_and_priority() -> None:
    """spec.members tags: a noFailover member never stands and is not a better candidate (async); equally
    up-to-date candidates defer to the higher failoverPriority, then the lower name."""
    tagged = decide(elect_obs(no_failover=frozenset({"pg-1"})))
    assert tagged.rule == "elect.ineligible" and "noFailover" in tagged.reason
    ahead = {"pg-2": probe("pg-2", lsn=200)}
    async_ahead = decide(elect_obs(peers=ahead, mode=Mode.ASYNC, no_failover=frozenset({"pg-2"})))
    assert async_ahead.rule == "elect.promote", async_ahead.reason
    # quorum: a noFailover member ahead and in the synchronous set may hold commits pg-1 lacks: wait
    quorum_ahead = decide(elect_obs(peers=ahead, no_failover=frozenset({"pg-2"})))
    assert quorum_ahead.rule == "elect.ineligible" and "(noFailover) is ahead" in quorum_ahead.reason
    tie = {"pg-2": probe("pg-2", lsn=100)}
    assert decide(elect_obs(peers=tie)).rule == "elect.promote"  # the lower name wins a tie
    preferred = decide(elect_obs(peers=tie, failover_priority={"pg-2": 5}))
    assert preferred.rule == "elect.ineligible" and "pg-2 is a better candidate" in preferred.reason
    assert decide(elect_obs(peers=tie, failover_priority={"pg-1": 5})).rule == "elect.promote"


def test_sync_set_leaves_out_no_sync_and_no_failover_members() -> None:
    o = obs("pg-0", pg=primary_pg(), n=5, k=1, no_sync=frozenset({"pg-3"}), no_failover=frozenset({"pg-4"}))
    assert sync_names(o) == 'ANY 1 ("pg-1","pg-2")'


def test_elect_promote() -> None:
    d = decide(elect_obs())
    assert d.rule == "elect.promote"
    assert kinds(d) == ["AcquireLeader", "RecordHistory", "WriteSyncRecord", "SetSyncNames", "Promote", "Publish"]
    history = first(d, actions.RecordHistory)
    assert isinstance(history, actions.RecordHistory) and (history.history.leader, history.history.timeline) == (
        "pg-1",
        2,
    )


def paused_state(state: ClusterState, until: float | None = None) -> ClusterState:
    return replace(state, pause=Pause(until=until, by="test"))


def test_elect_paused() -> None:
    """Maintenance mode: the best candidate does not take over; it does once the pause expired or ended."""
    o = elect_obs()
    assert decide(o).rule == "elect.promote"  # the same observation unpaused promotes
    assert o.cluster is not None
    paused = replace(o, cluster=paused_state(o.cluster), wall_now=1_000.0)
    d = decide(paused)
    assert d.rule == "elect.paused" and "AcquireLeader" not in kinds(d) and "Promote" not in kinds(d)
    assert "Follow" not in kinds(d), "a paused replica keeps its WAL source: it is not preparing to take over"
    expiring = replace(o, cluster=paused_state(o.cluster, until=2_000.0), wall_now=1_999.0)
    assert decide(expiring).rule == "elect.paused"
    assert decide(replace(expiring, wall_now=2_000.0)).rule == "elect.promote", "the pause ended by itself"


def test_elect_paused_still_lets_an_operator_force_and_a_primary_reclaim() -> None:
    request = SwitchoverRequest(target="pg-1", force=True)
    forced = elect_obs(state=paused_state(cluster(leader=None, switchover=request)))
    assert decide(forced).rule == "elect.forced"
    reclaim = obs("pg-0", pg=primary_pg(), state=paused_state(cluster(leader=None)))
    assert decide(reclaim).rule == "elect.reclaim", "the primary retaking its own lease is no failover"


def test_lead_down_too_long_not_while_paused() -> None:
    o = obs("pg-0", pg=stopped_pg(was_primary=True), memory=Memory(last_renewal=NOW - 0.2, pg_down_since=NOW - 11))
    assert o.cluster is not None
    d = decide(replace(o, cluster=paused_state(o.cluster)))
    assert d.rule == "lead.restart-in-place" and "ReleaseLeader" not in kinds(d)


def test_promotions_carry_the_change_of_primary_for_the_history() -> None:
    promote = first(decide(replace(elect_obs(), wall_now=1_234.0)), actions.Promote)
    assert isinstance(promote, actions.Promote) and promote.event is not None
    e = promote.event
    assert (e.kind, e.leader, e.previous, e.timeline, e.time) == (EventKind.FAILOVER, "pg-1", "pg-0", 2, 1_234.0)
    forced = elect_obs(state=cluster(leader=None, switchover=SwitchoverRequest(target="pg-1", force=True)))
    forced_promote = first(decide(forced), actions.Promote)
    assert isinstance(forced_promote, actions.Promote) and forced_promote.event is not None
    assert forced_promote.event.kind is EventKind.FORCED


def test_history_events_are_bounded_and_not_doubled() -> None:
    value: dict[str, object] | None = None
    for i in range(MAX_EVENTS + 5):
        value = append_event(value, HistoryEvent(float(i), EventKind.FAILOVER, f"pg-{i % 3}", None, i + 2, i, term=i))
    events = decode_events(value)
    assert len(events) == MAX_EVENTS and events[-1].time == MAX_EVENTS + 4 and events[0].time == 5
    again = append_event(value, events[-1])
    assert decode_events(again) == events, "the same leader and term is recorded once"
    assert decode_events({"events": [{"kind": "failover"}, "junk", {"leader": "pg-1", "time": "x"}]}) == [
        HistoryEvent(0.0, EventKind.FAILOVER, "pg-1", None, None, None)
    ]


# --- examples of the review's findings, each pinned to the rule that now handles it -------------------------


def test_elect_ineligible_while_a_live_primary_can_reclaim() -> None:
    """F8: a running primary whose agent answers reclaims; nobody promotes beside it."""
    o = elect_obs(peers={"pg-0": probe("pg-0", in_recovery=False, dcs_ok=True)})
    d = decide(o)
    assert d.rule == "elect.ineligible" and "reclaims" in d.reason


def test_elect_promote_beside_a_fenced_primary_whose_agent_is_dead() -> None:
    """F1: the old primary's postgres still answers, its agent does not: pgkeel_fence already refuses its
    commits, so the cluster fails over instead of staying unwritable."""
    o = elect_obs(peers={"pg-0": probe("pg-0", in_recovery=False, dcs_ok=False), "pg-2": probe("pg-2", lsn=90)})
    assert decide(o).rule == "elect.promote"
    unfenced = replace(o.cluster, history=LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.NONE))
    assert decide(replace(o, cluster=unfenced, old_leader=OldLeader.PRIMARY)).rule != "elect.promote"


def test_elect_ineligible_waits_a_bounded_time_for_an_attached_peer_in_async_mode() -> None:
    """Async: a peer still receiving WAL may end up ahead; promoting past it loses what only it received.
    The wait is bounded: a peer that never detaches only delays the failover by attached_peer_wait."""
    attached = {"pg-2": probe("pg-2", lsn=90, detached=False)}
    o = elect_obs(mode=Mode.ASYNC, peers=attached)
    d = decide(o)
    assert d.rule == "elect.ineligible" and "pg-2 still receives WAL" in d.reason
    bound = o.settings.attached_peer_wait
    assert decide(with_memory(o, leaderless_since=o.now - bound / 2)).rule == "elect.ineligible"
    assert decide(with_memory(o, leaderless_since=o.now - bound)).rule == "elect.promote"
    # a peer that cannot stand (no store, may have diverged) or has detached is not waited for
    for quiet in ({"dcs_ok": False}, {"candidate": False}, {"detached": True}):
        peers = {"pg-2": probe("pg-2", lsn=90, **{"detached": False, **quiet})}
        assert decide(elect_obs(mode=Mode.ASYNC, peers=peers)).rule == "elect.promote", quiet
    # quorum mode waits for its proof from the synchronous set instead (an attached peer is no witness)
    assert "still receives WAL" not in decide(elect_obs(peers=attached)).reason


def test_elect_ineligible_on_a_timeline_older_than_the_last_leader_served_on() -> None:
    """Promoting from timeline 1 after the last leader served on timeline 3 would create a second
    "timeline 2" (PostgreSQL names it after the newest history file it knows); pg_rewind then says
    "no rewind required" to nodes of the other timeline 2, which never stream again (sim seed 27)."""
    served = LeaderHistory("pg-0", address("pg-0"), 3, 100, 7, FenceKind.EXTENSION)  # a term: it served
    peers = {"pg-2": probe("pg-2", lsn=90, timeline=2)}
    o = elect_obs(pg=replica_pg(timeline=2, following=None, streaming=False), peers=peers)
    o = replace(o, cluster=replace(o.cluster, history=served))
    d = decide(o)
    assert d.rule == "elect.ineligible" and "behind timeline 3" in d.reason
    # predicted by record_promotion (no term): the promotion may never have happened, so one behind may stand
    predicted = replace(served, term=None)
    assert decide(replace(o, cluster=replace(o.cluster, history=predicted))).rule == "elect.promote"
    two_behind = replace(o, pg=replica_pg(timeline=1, following=None, streaming=False))
    assert decide(replace(two_behind, cluster=replace(o.cluster, history=predicted))).rule == "elect.ineligible"
    assert decide(replace(o, pg=replica_pg(timeline=3, following=None, streaming=False))).rule == "elect.promote"


def test_elect_promote_counts_a_behind_sync_member_that_cannot_stand_as_a_witness() -> None:
    """Sim seed 252 (300 steps): the other member of ANY 1 (pg-1, pg-2) stalled and waits for a rewind
    (not a candidate), behind pg-1: its position still proves it holds nothing pg-1 lacks. Ahead, it
    would prove nothing, and pg-1 waits."""
    for quiet in ({"candidate": False}, {"dcs_ok": False}):
        behind = {"pg-2": probe("pg-2", lsn=22, **quiet)}
        assert decide(elect_obs(peers=behind)).rule == "elect.promote", quiet
        ahead = {"pg-2": probe("pg-2", lsn=500, **quiet)}
        d = decide(elect_obs(peers=ahead))
        assert d.rule == "elect.ineligible" and "heard from 1" in d.reason, quiet


def test_elect_ineligible_a_sync_member_still_receiving_wal_proves_nothing() -> None:
    """Sim seed 5512: pg-2 (primary, ANY 1 (pg-0, pg-1)) paused mid-commit; pg-1's agent hung, so its
    postgres stayed attached to pg-2 and answered the probe behind pg-0. pg-0 promoted on that; pg-2
    resumed, pg-1 confirmed the commit it had written before its fence deadline, and the client got an
    acknowledgement pg-0's history lacks. An attached standby's position is a snapshot, not a bound."""
    attached = {"pg-2": probe("pg-2", lsn=22, detached=False, candidate=False)}
    d = decide(elect_obs(peers=attached))
    assert d.rule == "elect.ineligible" and "heard from 1" in d.reason
    detached = {"pg-2": probe("pg-2", lsn=22, detached=True, candidate=False)}
    assert decide(elect_obs(peers=detached)).rule == "elect.promote"


def test_elect_promote_a_failed_promotion_leaves_no_last_leader_to_defer_to() -> None:
    """Sim seed 11605: pg-2 won the lease and wrote the history (timeline 2 predicted), then lost the store
    before the sync record and pg_promote. The sync record still names pg-0, so pg-2 is not the last
    leader: it must not count itself as one, nor may pg-1 defer to it as one, or each waits for the other."""
    history = LeaderHistory("pg-2", address("pg-2"), 2, 100, None, FenceKind.EXTENSION)
    state = cluster(leader=None, members={"pg-2": record("pg-2")}, sync=SYNC, history=history)
    mine = elect_obs(state=state, peers={"pg-2": probe("pg-2", lsn=100)})
    assert decide(mine).rule == "elect.promote"  # pg-1: a tie with pg-2, the lower name stands
    theirs = replace(mine, me="pg-2", peers={"pg-1": probe("pg-1", lsn=100)}, address=address("pg-2"))
    d = decide(theirs)
    assert d.rule == "elect.ineligible" and "pg-1 is a better candidate" in d.reason


def test_elect_promote_the_last_leader_on_a_tie_even_with_a_lower_named_peer() -> None:
    """Sim seed 870: the last leader (now a standby) deferred to an equal peer with a lower name that
    could never prove its quorum; nobody led. The last leader holds every commit it acknowledged."""
    sync = SyncRecord("pg-1", ("pg-0", "pg-2"), 1, version=3)
    history = LeaderHistory("pg-1", address("pg-1"), 1, 100, 5, FenceKind.EXTENSION)
    state = cluster(leader=None, members={"pg-0": record("pg-0")}, sync=sync, history=history)
    o = elect_obs(state=state, peers={"pg-0": probe("pg-0", lsn=100)})
    assert decide(o).rule == "elect.promote"
    # and the lower-named peer defers to the last leader on the tie
    theirs = replace(o, me="pg-0", peers={"pg-1": probe("pg-1", lsn=100)}, address=address("pg-0"))
    d = decide(theirs)
    assert d.rule == "elect.ineligible" and "pg-1 is a better candidate" in d.reason


def test_elect_ineligible_ranks_timeline_before_lsn() -> None:
    """F6: an un-rewound old primary on an older timeline with more WAL does not win."""
    o = elect_obs(
        pg=replica_pg(lsn=9000, timeline=1, following=None, streaming=False),
        peers={"pg-2": probe("pg-2", lsn=5000, timeline=2)},
    )
    assert decide(o).rule == "elect.ineligible"


def test_elect_ineligible_ignores_a_peer_without_the_store_when_quorum_is_proven() -> None:
    """F14: a peer that cannot reach the store is no candidate; with k=2 of 4 the others still prove it."""
    sync = SyncRecord("pg-0", ("pg-1", "pg-2", "pg-3", "pg-4"), 2, version=3)
    state = cluster(
        leader=None,
        members={},
        sync=sync,
        history=LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.EXTENSION),
    )
    peers = {"pg-2": probe("pg-2", lsn=99), "pg-3": probe("pg-3", lsn=98), "pg-4": probe("pg-4", lsn=500, dcs_ok=False)}
    d = decide(elect_obs(state=state, peers=peers, n=5, k=2))
    assert d.rule == "elect.promote"


def test_elect_ineligible_without_a_sync_record_in_quorum_mode() -> None:
    """F8: after a store wipe nothing proves a candidate holds every commit."""
    state = cluster(leader=None, members={}, sync=None)
    d = decide(elect_obs(state=state))
    assert d.rule == "elect.ineligible" and "synchronous-set record" in d.reason


def test_elect_ineligible_async_lag_uses_durable_history() -> None:
    """F4: the lag bound holds after the old primary's member record expired."""
    history = LeaderHistory("pg-0", address("pg-0"), 1, 10_000_000, 1, FenceKind.EXTENSION)
    state = cluster(leader=None, members={}, history=history)
    d = decide(elect_obs(state=state, mode=Mode.ASYNC, max_lag_bytes=1000, peers={}))
    assert d.rule == "elect.ineligible" and "lagging" in d.reason


def test_elect_promote_five_nodes_survive_two_failures_with_k_2() -> None:
    """The default k = n: 5 nodes, primary and one replica lost, the remaining three prove it."""
    sync = SyncRecord("pg-0", ("pg-1", "pg-2", "pg-3", "pg-4"), 2, version=3)
    state = cluster(
        leader=None,
        members={},
        sync=sync,
        history=LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.EXTENSION),
    )
    peers = {"pg-2": probe("pg-2", lsn=99), "pg-3": probe("pg-3", lsn=98)}
    assert decide(elect_obs(state=state, peers=peers, n=5, k=2)).rule == "elect.promote"
    # the old default, k = 1 at every size: the same three survivors cannot prove anything (needs all four)
    k1 = replace(state, sync=SyncRecord("pg-0", sync.members, 1, version=3))
    assert decide(elect_obs(state=k1, peers=peers, n=5, k=1)).rule == "elect.ineligible"


def test_lead_serve_changes_postgres_first_when_the_proof_weakens() -> None:
    """F9: k raised 1 → 2 with the same members: postgres first, the store after the switch point is flushed."""
    sync = SyncRecord("pg-0", ("pg-1", "pg-2", "pg-3", "pg-4"), 1, version=3)
    pg = primary_pg(lsn=500, sync_standby_names='ANY 1 ("pg-1","pg-2","pg-3","pg-4")')
    d = decide(obs("pg-0", pg=pg, state=cluster(sync=sync, n=5), n=5, k=2))
    assert "SetSyncNames" in kinds(d) and "WriteSyncRecord" not in kinds(d)
    moved = with_memory(
        obs(
            "pg-0",
            pg=primary_pg(
                lsn=600,
                sync_standby_names='ANY 2 ("pg-1","pg-2","pg-3","pg-4")',
                replication=(ReplicaFlush("pg-1", 550), ReplicaFlush("pg-2", 400)),
            ),
            state=cluster(sync=sync, n=5),
            n=5,
            k=2,
        ),
        sync_switch=model.SyncSwitch(("pg-1", "pg-2", "pg-3", "pg-4"), 2, 500),
    )
    assert "WriteSyncRecord" not in kinds(decide(moved))  # only one of the new set flushed past 500
    flushed = with_memory(
        obs(
            "pg-0",
            pg=replace_replication(moved.pg, (ReplicaFlush("pg-1", 550), ReplicaFlush("pg-2", 510))),
            state=cluster(sync=sync, n=5),
            n=5,
            k=2,
        ),
        sync_switch=moved.memory.sync_switch,
    )
    assert "WriteSyncRecord" in kinds(decide(flushed))


def replace_replication(pg: PgState, replication: tuple[ReplicaFlush, ...]) -> PgState:
    return replace(pg, replication=replication)


def test_every_rule_has_an_example() -> None:
    here = {name for name, _ in inspect.getmembers(sys.modules[__name__], inspect.isfunction)}
    missing = [r.name for r in ALL_RULES if "test_" + r.name.replace(".", "_").replace("-", "_") not in here]
    assert not missing, f"rules without an example test named after them: {missing}"


def test_docs_ha_rules_is_generated_from_the_table() -> None:
    from pathlib import Path

    from pgkeel.ha.rules import rules_markdown

    doc = Path(__file__).resolve().parents[3] / "docs" / "HA-RULES.md"
    assert doc.read_text() == rules_markdown(), "docs/HA-RULES.md is stale: run `make rules`"


def test_election_acquisitions_expire_with_the_store_read_they_rest_on() -> None:
    """Simulator seed 8906: a node frozen between observing and AcquireLeader took a lease that another node
    had held and lost meanwhile, and promoted without that leader's acknowledged commits."""
    o = replace(elect_obs(), store_read_at=NOW - 0.3)
    for plan in (o, elect_obs(state=cluster(leader=None, switchover=SwitchoverRequest(target="pg-1", force=True)))):
        plan = replace(plan, store_read_at=NOW - 0.3)
        acquire = first(decide(plan), actions.AcquireLeader)
        assert isinstance(acquire, actions.AcquireLeader)
        assert acquire.not_after == NOW - 0.3 + plan.settings.election_freshness
    assert plan.settings.election_freshness < plan.settings.ttl - plan.settings.dcs_timeout
