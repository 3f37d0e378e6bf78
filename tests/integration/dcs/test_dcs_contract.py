"""The DCS contract: every backend must pass the same suite, with real stores and short TTLs.

Each test runs once per entry of `conftest.BACKENDS`. Separate `open_store()` calls stand
for separate nodes (own connection, own caches), as in a real cluster.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from pgkeel.dcs import DCS, ClusterView, DCSError

Open = Callable[..., DCS]
TTL = 1.0  # the shortest lease etcd grants in these tests; real clusters use ~30 s


def wait_for(store: DCS, predicate: Callable[[ClusterView], bool], timeout: float) -> ClusterView:
    """Poll view() until predicate holds; fail the test if it does not within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        view = store.view()
        if predicate(view):
            return view
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout}s; last view: {view}")
        time.sleep(0.05)


def test_empty_view(open_store: Open) -> None:
    view = open_store().view()
    assert view == ClusterView(
        leader=None, members={}, initialize=None, sync=None, sync_version=0, switchover=None, history=None
    )


def test_acquire_on_empty(open_store: Open) -> None:
    store = open_store()
    assert store.acquire_leader("n0", 5.0)
    leader = store.view().leader
    assert leader is not None
    assert leader.holder == "n0"
    assert leader.term > 0
    assert leader.ttl >= 5.0


def test_second_acquire_fails_while_live(open_store: Open) -> None:
    a, b = open_store(), open_store()
    assert a.acquire_leader("n0", 5.0)
    term = a.view().leader.term  # type: ignore[union-attr]
    assert not b.acquire_leader("n1", 5.0)
    assert not a.acquire_leader("n0", 5.0), "even the holder must not re-acquire a live lease"
    leader = b.view().leader
    assert leader is not None and (leader.holder, leader.term) == ("n0", term)


def test_renew_by_holder_extends_lease_and_keeps_term(open_store: Open) -> None:
    store, other = open_store(), open_store()
    assert store.acquire_leader("n0", TTL)
    term = store.view().leader.term  # type: ignore[union-attr]
    started = time.monotonic()
    while time.monotonic() - started < 2.0 * TTL:  # well past the first lease's end
        time.sleep(0.3)
        assert store.renew_leader("n0", TTL)
    leader = other.view().leader
    assert leader is not None and (leader.holder, leader.term) == ("n0", term)
    assert not other.acquire_leader("n1", TTL)


def test_renew_by_non_holder_fails(open_store: Open) -> None:
    a, b = open_store(), open_store()
    assert not b.renew_leader("n1", TTL), "renew with no leader at all"
    assert a.acquire_leader("n0", 5.0)
    assert not b.renew_leader("n1", 5.0)
    assert not a.renew_leader("n1", 5.0), "a name that does not hold it, even on the holder's connection"
    assert a.view().leader.holder == "n0"  # type: ignore[union-attr]


def test_renew_from_another_connection_of_the_holder(open_store: Open) -> None:
    """An agent that restarts keeps its name and may renew the lease it still holds."""
    assert open_store().acquire_leader("n0", 5.0)
    term = open_store().view().leader.term  # type: ignore[union-attr]
    restarted = open_store()
    assert restarted.renew_leader("n0", 5.0)
    assert restarted.view().leader.term == term  # type: ignore[union-attr]


def test_lease_expires_and_next_term_is_higher(open_store: Open) -> None:
    a, b = open_store(), open_store()
    assert a.acquire_leader("n0", TTL)
    acquired = time.monotonic()
    first = a.view().leader
    assert first is not None
    view = wait_for(b, lambda v: v.leader is None, timeout=TTL + 2.0)
    assert time.monotonic() - acquired >= TTL * 0.9, "lease vanished before its ttl"
    assert view.leader is None
    assert not a.renew_leader("n0", TTL), "an expired lease cannot be renewed"
    assert b.acquire_leader("n1", TTL)
    second = b.view().leader
    assert second is not None and second.holder == "n1"
    assert second.term > first.term


def test_terms_strictly_increase_across_acquisitions(open_store: Open) -> None:
    store = open_store()
    terms = []
    for i in range(4):
        assert store.acquire_leader(f"n{i % 2}", 5.0)
        terms.append(store.view().leader.term)  # type: ignore[union-attr]
        assert store.release_leader(f"n{i % 2}")
    assert terms == sorted(set(terms)), terms


def test_release_only_by_holder(open_store: Open) -> None:
    a, b = open_store(), open_store()
    assert not a.release_leader("n0"), "nothing to release"
    assert a.acquire_leader("n0", 5.0)
    term = a.view().leader.term  # type: ignore[union-attr]
    assert not b.release_leader("n1")
    assert b.view().leader.holder == "n0"  # type: ignore[union-attr]
    assert a.release_leader("n0")
    assert b.view().leader is None
    assert not a.release_leader("n0")
    assert not a.renew_leader("n0", 5.0), "a released lease cannot be renewed"
    assert b.acquire_leader("n1", 5.0)
    assert b.view().leader.term > term  # type: ignore[union-attr]


def test_take_over_leader(open_store: Open) -> None:
    old, new, third = open_store(), open_store(), open_store()
    assert not old.take_over_leader("n0", "n1", 5.0), "no leader to hand over"
    assert old.acquire_leader("n0", 5.0)
    term = old.view().leader.term  # type: ignore[union-attr]
    assert not third.take_over_leader("n2", "n1", 5.0), "only from the holder"
    assert old.view().leader.holder == "n0"  # type: ignore[union-attr]
    assert old.take_over_leader("n0", "n1", 5.0)
    leader = third.view().leader
    assert leader is not None and leader.holder == "n1" and leader.term > term
    assert not old.renew_leader("n0", 5.0), "the old holder lost it"
    assert new.renew_leader("n1", 5.0), "the new holder's own node can renew it"
    assert third.view().leader.term == leader.term  # type: ignore[union-attr]
    assert not old.take_over_leader("n0", "n2", 5.0), "the old holder cannot hand it on again"
    assert new.release_leader("n1")
    assert old.acquire_leader("n0", 5.0)
    assert third.view().leader.term > leader.term, "terms keep rising after a take-over"  # type: ignore[union-attr]


def test_take_over_of_expired_lease_fails(open_store: Open) -> None:
    store = open_store()
    assert store.acquire_leader("n0", TTL)
    wait_for(store, lambda v: v.leader is None, timeout=TTL + 2.0)
    assert not store.take_over_leader("n0", "n1", TTL)
    assert store.view().leader is None


def test_initialize_first_writer_wins_and_cas(open_store: Open) -> None:
    a, b = open_store(), open_store()
    assert a.initialize("placeholder-n0")
    assert not b.initialize("placeholder-n1")
    assert b.view().initialize == "placeholder-n0"
    assert not b.set_initialize("placeholder-n1", "123")
    assert a.set_initialize("placeholder-n0", "7301234567890123456")
    assert b.view().initialize == "7301234567890123456"
    assert not a.set_initialize("placeholder-n0", "999"), "stale expected value"
    assert not b.clear_initialize("placeholder-n0")
    assert b.view().initialize == "7301234567890123456"
    assert a.clear_initialize("7301234567890123456")
    assert a.view().initialize is None
    assert not a.set_initialize("7301234567890123456", "x"), "nothing to replace"
    assert not a.clear_initialize("7301234567890123456"), "nothing to clear"
    assert b.initialize("placeholder-n1"), "after a failed bootstrap anyone may try again"


def test_members_upsert_expire_delete(open_store: Open) -> None:
    n0, n1, reader = open_store(), open_store(), open_store()
    status: dict[str, Any] = {"role": "primary", "timeline": 1, "lsn": "0/3000060", "api_url": "http://x:8008"}
    n0.set_member("n0", status, 30.0)
    n1.set_member("n1", {"role": "replica"}, TTL)
    view = reader.view()
    assert set(view.members) == {"n0", "n1"}
    assert view.members["n0"].name == "n0" and view.members["n0"].data == status
    n0.set_member("n0", {**status, "lsn": "0/4000000"}, 30.0)
    assert reader.view().members["n0"].data["lsn"] == "0/4000000"
    view = wait_for(reader, lambda v: "n1" not in v.members, timeout=TTL + 2.0)
    assert "n0" in view.members
    n1.set_member("n1", {"role": "replica"}, 30.0)
    assert "n1" in reader.view().members, "a member can come back after expiring"
    n0.delete_member("n0")
    n0.delete_member("n0")  # absent is fine
    assert set(reader.view().members) == {"n1"}


def test_member_refresh_keeps_it_alive(open_store: Open) -> None:
    """Refreshing every 0.3 s outlives a 1 s TTL. A refresh the store does not answer in time is
    skipped, as the agent skips it (on a loaded CI machine etcd missed one 1 s deadline in ~800
    tests); the next refresh, well inside the TTL, must still keep the member."""
    store = open_store()
    started = time.monotonic()
    refreshes = missed = 0
    while time.monotonic() - started < 2.0 * TTL:
        refreshes += 1
        try:
            store.set_member("n0", {"role": "replica"}, TTL)
        except DCSError:
            missed += 1
        time.sleep(0.3)
    assert missed < refreshes / 2, f"{missed} of {refreshes} refreshes unanswered"
    assert "n0" in store.view().members


def test_sync_compare_and_swap(open_store: Open) -> None:
    a, b = open_store(), open_store()
    first = {"leader": "n0", "sync_standbys": ["n1"], "quorum": 1}
    assert not a.set_sync(first, 1), "absent sync has version 0"
    assert a.set_sync(first, 0)
    v1 = b.view()
    assert v1.sync == first and v1.sync_version > 0
    assert not b.set_sync({"leader": "n1"}, 0), "must-not-exist fails once it exists"
    second = {"leader": "n0", "sync_standbys": ["n1", "n2"], "quorum": 1}
    assert b.set_sync(second, v1.sync_version)
    v2 = a.view()
    assert v2.sync == second and v2.sync_version > v1.sync_version
    assert not a.set_sync({"leader": "n2"}, v1.sync_version), "stale version loses"
    assert b.view().sync == second


def test_values_compare_and_swap_without_a_lease(open_store: Open) -> None:
    a, b = open_store(), open_store()
    assert a.view().values == {}
    paused = {"pause": {"until": None, "by": "test"}}
    assert not a.set_value("config", paused, 1), "an absent value has version 0"
    assert a.set_value("config", paused, 0), "no lease is needed to write a value"
    v1 = b.view().values["config"]
    assert v1.value == paused and v1.version > 0
    assert not b.set_value("config", {}, 0), "must-not-exist fails once it exists"
    assert b.set_value("config", {}, v1.version)
    v2 = a.view().values["config"]
    assert v2.value == {} and v2.version > v1.version
    assert not a.set_value("config", paused, v1.version), "a stale version loses"
    assert a.set_value("events", {"events": [{"leader": "n1"}]}, 0), "each key has its own version"
    seen = b.view().values
    assert seen["config"].value == {} and seen["events"].value == {"events": [{"leader": "n1"}]}
    with pytest.raises(ValueError, match="unknown cluster value"):
        a.set_value("leader", {}, 0)


def test_switchover_set_and_clear(open_store: Open) -> None:
    a, b = open_store(), open_store()
    a.clear_switchover()  # absent is fine
    request = {"from": "n0", "to": "n1", "force": False}
    a.set_switchover(request)
    assert b.view().switchover == request
    a.set_switchover({"from": "n0", "to": "n2", "force": True})
    assert b.view().switchover == {"from": "n0", "to": "n2", "force": True}
    b.clear_switchover()
    assert a.view().switchover is None


def test_switchover_expires_after_its_ttl(open_store: Open) -> None:
    a, b = open_store(), open_store()
    request = {"from": "n0", "to": "n1", "force": False}
    started = time.monotonic()
    a.set_switchover(request, ttl=TTL)
    assert b.view().switchover == request
    view = wait_for(b, lambda v: v.switchover is None, timeout=TTL + 2.0)
    assert time.monotonic() - started >= TTL * 0.9, "request vanished before its ttl"
    assert view.switchover is None
    assert a.view().switchover is None, "expired for the writer too"
    assert open_store().view().switchover is None, "an expired request does not come back for a new observer"
    a.clear_switchover()  # absent is fine


def test_switchover_replacement_has_its_own_ttl(open_store: Open) -> None:
    a, b = open_store(), open_store()
    a.set_switchover({"to": "n1"}, ttl=TTL)
    a.set_switchover({"to": "n2"}, ttl=30.0)
    time.sleep(TTL + 0.5)  # past the first request's ttl
    assert b.view().switchover == {"to": "n2"}
    a.set_switchover({"to": "n3"}, ttl=30.0)
    a.set_switchover({"to": "n3"}, ttl=TTL)  # the same request again, now short: the last ttl counts
    wait_for(b, lambda v: v.switchover is None, timeout=TTL + 2.0)


HISTORY = {"leader": "n0", "host": "10.0.0.1", "port": 5432, "api_url": "https://10.0.0.1:8008",
           "timeline": 3, "lsn": "0/3000060", "term": 7}


def test_history_written_only_by_the_live_holder(open_store: Open) -> None:
    a, b = open_store(), open_store()
    assert not a.set_history("n0", HISTORY), "nobody holds the lease"
    assert a.view().history is None
    assert a.acquire_leader("n0", 5.0)
    assert not b.set_history("n1", {**HISTORY, "leader": "n1"}), "a non-holder"
    assert not a.set_history("n1", {**HISTORY, "leader": "n1"}), "a non-holder, even on the holder's connection"
    assert b.view().history is None
    assert a.set_history("n0", HISTORY)
    view = b.view()
    assert view.history == HISTORY and view.leader is not None and view.leader.holder == "n0"
    restarted = open_store()
    assert restarted.set_history("n0", {**HISTORY, "lsn": "0/4000000"}), "another connection of the holder"
    assert b.view().history == {**HISTORY, "lsn": "0/4000000"}


def test_history_refused_for_an_expired_holder(open_store: Open) -> None:
    holder, other = open_store(), open_store()
    assert holder.acquire_leader("n0", TTL)
    acquired = time.monotonic()
    assert holder.set_history("n0", HISTORY)
    time.sleep(TTL + 0.2)  # no renewal: the lease runs out
    wait_for(other, lambda v: v.leader is None, timeout=TTL + 2.0)
    assert time.monotonic() - acquired > TTL
    assert not holder.set_history("n0", {**HISTORY, "lsn": "0/9000000"}), "an expired holder"
    view = other.view()
    assert view.leader is None and view.history == HISTORY, "the record outlives the lease"


def test_history_survives_release_member_expiry_and_reopen(backend: Any, scope: str, open_store: Open) -> None:
    store = backend.open(scope)
    try:
        assert store.acquire_leader("n0", 5.0)
        store.set_member("n0", {"role": "primary"}, TTL)
        published = time.monotonic()
        assert store.set_history("n0", HISTORY)
        assert store.release_leader("n0")
        assert store.view().history == HISTORY, "survives release"
        view = wait_for(store, lambda v: "n0" not in v.members, timeout=TTL + 2.0)
        assert time.monotonic() - published >= TTL * 0.9
        assert view.history == HISTORY, "survives the member record's expiry"
    finally:
        store.close()
    reopened = open_store()
    view = reopened.view()
    assert view.leader is None and view.history == HISTORY, "survives close and reopen"


def test_next_leader_replaces_history(open_store: Open) -> None:
    old, new, third = open_store(), open_store(), open_store()
    assert old.acquire_leader("n0", TTL)
    assert old.set_history("n0", HISTORY)
    wait_for(new, lambda v: v.leader is None, timeout=TTL + 2.0)
    assert new.acquire_leader("n1", 5.0)
    assert not old.set_history("n0", {**HISTORY, "lsn": "0/9000000"}), "the old leader cannot write any more"
    assert new.view().history == HISTORY, "kept until the next leader writes"
    second = {**HISTORY, "leader": "n1", "host": "10.0.0.2", "timeline": 4, "term": 8}
    assert new.set_history("n1", second)
    assert third.view().history == second
    assert new.take_over_leader("n1", "n2", 5.0)
    assert not new.set_history("n1", HISTORY), "handed over: no longer the holder"
    assert third.set_history("n2", {**second, "leader": "n2"})
    assert old.view().history == {**second, "leader": "n2"}
    assert third.release_leader("n2")
    assert old.acquire_leader("n0", 5.0)
    assert old.set_history("n0", HISTORY), "a later term of the first leader"
    assert new.view().history == HISTORY


def test_scopes_are_isolated(open_store: Open) -> None:
    a, b = open_store(scope_="alpha-x"), open_store(scope_="alpha")
    assert a.acquire_leader("n0", 5.0)
    assert b.acquire_leader("n0", 5.0), "another cluster has its own lease"
    a.set_member("m", {}, 5.0)
    assert a.initialize("x")
    assert a.set_history("n0", HISTORY)
    a.set_switchover({"to": "m"})
    view = b.view()
    assert view.members == {} and view.initialize is None and view.history is None and view.switchover is None
    assert a.release_leader("n0") and b.release_leader("n0")


def test_invalid_arguments_are_rejected(open_store: Open) -> None:
    store = open_store()
    with pytest.raises(ValueError):
        store.acquire_leader("n0", 0)
    with pytest.raises(ValueError):
        store.acquire_leader("a/b", 5.0)
    with pytest.raises(ValueError):
        store.set_member("", {}, 5.0)
    with pytest.raises(ValueError):
        store.set_switchover({"to": "n1"}, ttl=0)
    with pytest.raises(ValueError):
        store.set_history("a/b", {})


def test_concurrent_acquire_threads_one_winner(open_store: Open) -> None:
    stores = [open_store() for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    results: dict[str, bool | BaseException] = {}

    def race(i: int, store: DCS) -> None:
        barrier.wait()
        try:
            results[f"n{i}"] = store.acquire_leader(f"n{i}", 5.0)
        except BaseException as exc:
            results[f"n{i}"] = exc

    threads = [threading.Thread(target=race, args=(i, s)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == len(stores), results
    winners = [name for name, won in results.items() if won is True]
    assert len(winners) == 1, results
    assert all(won is False for name, won in results.items() if name not in winners), results
    assert stores[0].view().leader.holder == winners[0]  # type: ignore[union-attr]


def _race_in_process(backend: Any, scope: str, name: str, barrier: Any, out: Any) -> None:
    store = backend.open(scope)
    try:
        barrier.wait(timeout=10)
        out.put((name, store.acquire_leader(name, 5.0)))
    except BaseException as exc:
        out.put((name, repr(exc)))
    finally:
        store.close()


def test_concurrent_acquire_processes_one_winner(backend: Any, scope: str, open_store: Open) -> None:
    ctx = multiprocessing.get_context("fork")
    count = 6
    barrier, out = ctx.Barrier(count), ctx.Queue()
    procs = [ctx.Process(target=_race_in_process, args=(backend, scope, f"n{i}", barrier, out)) for i in range(count)]
    for proc in procs:
        proc.start()
    try:
        results = dict(out.get(timeout=20) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    winners = [name for name, won in results.items() if won is True]
    assert len(winners) == 1, results
    assert all(won is False for name, won in results.items() if name not in winners), results
    assert open_store().view().leader.holder == winners[0]  # type: ignore[union-attr]


def test_outage_raises_dcserror_within_timeout(backend: Any, open_store: Open) -> None:
    timeout = 0.5
    holder = open_store(timeout=timeout)
    assert holder.acquire_leader("n0", 30.0)
    calls: list[tuple[str, Callable[[], object]]] = [
        ("renew_leader", lambda: holder.renew_leader("n0", 30.0)),
        ("acquire_leader", lambda: holder.acquire_leader("n1", 30.0)),
        ("set_member", lambda: holder.set_member("n0", {}, 30.0)),
        ("set_sync", lambda: holder.set_sync({}, 0)),
        ("initialize", lambda: holder.initialize("x")),
        ("set_history", lambda: holder.set_history("n0", HISTORY)),
        ("set_switchover", lambda: holder.set_switchover({"to": "n1"}, ttl=30.0)),
        ("set_value", lambda: holder.set_value("config", {}, 0)),
    ]
    with backend.outage():
        for what, call in calls:
            started = time.monotonic()
            with pytest.raises(DCSError):
                call()
            elapsed = time.monotonic() - started
            assert elapsed < timeout + 0.5, f"{what} took {elapsed:.2f}s with timeout {timeout}s"
        started = time.monotonic()
        with contextlib.suppress(DCSError):
            holder.view()  # a store may still serve reads (sqlite WAL), but never hang
        assert time.monotonic() - started < timeout + 0.5
    assert holder.renew_leader("n0", 30.0), "the store works again after the outage"
