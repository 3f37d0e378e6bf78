"""Scaling's pure parts: the recorded membership wins over the document's, a removed member never leads, the
sync rule and slots follow the recorded members (pgkeel.ha.membership, pgkeel.ha.records.Membership)."""

from __future__ import annotations

from dataclasses import replace

from builders import cluster, decide, kinds, obs, primary_pg, replica_pg
from test_rules import elect_obs

from pgkeel.ha import actions
from pgkeel.ha.membership import current_members, current_settings, known_members
from pgkeel.ha.records import Membership, SyncRecord
from pgkeel.ha.settings import HASettings
from pgkeel.ha.sync import SyncRule, bridge, covers, desired_rule


def test_the_recorded_membership_wins_and_survives_a_round_trip_through_the_store_value() -> None:
    state = replace(cluster(), membership=Membership(("pg-0", "pg-1", "pg-2", "pg-3", "pg-4"), 2))
    assert current_members(["pg-0", "pg-1", "pg-2"], state) == ("pg-0", "pg-1", "pg-2", "pg-3", "pg-4")
    assert current_members(["pg-0", "pg-1", "pg-2"], cluster()) == ("pg-0", "pg-1", "pg-2")
    assert current_members(["pg-0"], None) == ("pg-0",)
    shrunk = replace(cluster(), membership=Membership(("pg-0", "pg-1", "pg-2"), 1))
    assert known_members(["pg-0", "pg-1", "pg-2", "pg-3", "pg-4"], shrunk) == ("pg-0", "pg-1", "pg-2", "pg-3", "pg-4")
    assert current_settings(HASettings(sync_standbys=1), state).sync_standbys == 2
    settings = HASettings(sync_standbys=2)
    assert current_settings(settings, state) is settings
    value = {"pause": None, "membership": Membership(("a", "b", "c"), 1).to_json()}
    assert Membership.from_config(value) == Membership(("a", "b", "c"), 1)
    for bad in ({"members": [], "syncStandbys": 1}, {"members": ["a"], "syncStandbys": True},
                {"members": "abc", "syncStandbys": 1}, {"members": ["a"], "syncStandbys": -1}):
        assert Membership.from_config({"membership": bad}) is None, bad


def test_the_sync_rule_and_slots_follow_the_recorded_members() -> None:
    five = obs("pg-0", pg=primary_pg(), n=5, k=2)
    assert desired_rule(five).members == ("pg-1", "pg-2", "pg-3", "pg-4") and desired_rule(five).quorum == 2
    three = replace(five, members=("pg-0", "pg-1", "pg-2"), settings=HASettings(sync_standbys=1))
    rule = desired_rule(three)
    assert rule.members == ("pg-1", "pg-2") and rule.quorum == 1
    # Slots of removed members are dropped by the leader and by every replica (replicas keep slots for the others).
    stale = frozenset({"pg_0", "pg_1", "pg_2", "pg_3", "pg_4"})
    lead = decide(replace(three, pg=primary_pg(slots=stale)))
    drops = [a for a in lead.actions if isinstance(a, actions.DropSlots)]
    assert drops and set(drops[0].slots) == {"pg_3", "pg_4"}, kinds(lead)
    replica = obs("pg-1", pg=replica_pg(slots=stale - {"pg_1"}), state=cluster(n=3))
    follow = decide(replica)
    drops = [a for a in follow.actions if isinstance(a, actions.DropSlots)]
    assert follow.rule == "follow.stream" and drops and set(drops[0].slots) == {"pg_3", "pg_4"}, kinds(follow)
    assert not [a for a in decide(obs("pg-1")).actions if isinstance(a, actions.DropSlots)]  # nothing stale


def test_a_member_the_membership_no_longer_names_is_never_promoted() -> None:
    assert decide(elect_obs()).rule == "elect.promote"
    removed = replace(elect_obs(), members=("pg-0", "pg-2", "pg-3"))
    d = decide(removed)
    assert "AcquireLeader" not in kinds(d) and "Promote" not in kinds(d), (d.rule, kinds(d))


def test_the_bridge_of_a_scaling_waits_for_no_member_that_is_gone_or_still_cloning() -> None:
    four = SyncRecord("pg-0", ("pg-1", "pg-2", "pg-3", "pg-4"), 2)
    two = SyncRule(("pg-1", "pg-2"), 1)
    staying = frozenset({"pg-1", "pg-2"})
    # 5 → 3, the removed pods already gone: ANY 2 of the two that stay, not ANY 3 of all four.
    assert bridge(four, two, staying) == SyncRule(("pg-1", "pg-2"), 2)
    # 3 → 5, the new pods still cloning: ANY 2 of the old two; ANY 3 of the four would wait for a new one.
    grown = SyncRule(("pg-1", "pg-2", "pg-3", "pg-4"), 2)
    assert bridge(SyncRecord("pg-0", ("pg-1", "pg-2"), 1), grown, staying) == SyncRule(("pg-1", "pg-2"), 2)
    # nobody connected: the union, quorum raised, as before
    assert bridge(four, two) == SyncRule(("pg-1", "pg-2", "pg-3", "pg-4"), 3)
    for rule in (bridge(four, two, staying), bridge(four, two)):
        assert covers(four, rule) and covers(SyncRecord("pg-0", two.members, two.quorum), rule)
