"""The failsafe promise: who may promise whom, and that a promise and an acquisition never cross."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest
from builders import NOW, address, cluster

from pgkeel.ha import failsafe
from pgkeel.ha.failsafe import Promises, refusal
from pgkeel.ha.records import FenceKind, LeaderHistory

MEMBERS = ("pg-0", "pg-1", "pg-2")


def why(view: object = "default", **kw: object) -> str | None:
    args: dict[str, object] = dict(
        me="pg-1", leader="pg-0", members=MEMBERS, holding=False, acting_primary=False, acquiring=False
    )
    args.update(kw)
    args["view"] = cluster(leader="pg-0") if view == "default" else view
    return refusal(**args)  # type: ignore[arg-type]


def test_a_replica_that_last_saw_the_asker_lead_promises() -> None:
    assert why() is None
    # the lease expired in the store meanwhile, but the durable history still names the asker
    history = LeaderHistory("pg-0", address("pg-0"), 1, 100, 1, FenceKind.EXTENSION)
    assert why(cluster(leader=None, history=history)) is None


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"leader": "pg-1"}, "itself"),
        ({"leader": "pg-9"}, "not a member"),
        ({"acquiring": True}, "taking the lease"),
        ({"holding": True}, "holds the lease"),
        ({"acting_primary": True}, "runs as a primary"),
        ({"view": None}, "has not read the store"),
        ({"view": cluster(leader="pg-2")}, "pg-2, not pg-0"),
        ({"view": cluster(leader=None)}, "nobody, not pg-0"),
    ],
)
def test_refusals_name_why(kw: dict[str, object], fragment: str) -> None:
    reason = why(**kw)
    assert reason is not None and fragment in reason


def test_a_promise_blocks_acquisitions_until_it_ends_and_is_extended_by_each_grant() -> None:
    p = Promises(None, ttl=3.0, now=NOW)
    assert p.grant("pg-0", NOW, None).until == NOW + 3.0
    assert p.grant("pg-0", NOW + 1.0, None).until == NOW + 4.0
    with p.acquisition(NOW + 3.9) as refused:
        assert refused is not None and "pg-0" in refused
    assert p.active_until(NOW + 3.9) == NOW + 4.0
    with p.acquisition(NOW + 4.0) as refused:
        assert refused is None
    assert p.active_until(NOW + 4.0) is None


def test_no_promise_while_acquiring_and_a_refused_grant_changes_nothing() -> None:
    p = Promises(None, ttl=3.0, now=NOW)
    with p.acquisition(NOW) as refused:
        assert refused is None
        with pytest.raises(ValueError, match="taking the lease"):
            p.grant("pg-0", NOW, None)
    with pytest.raises(ValueError, match="holds the lease"):
        p.grant("pg-0", NOW, "this node holds the lease")
    assert p.promise is None


def test_grant_and_acquisition_are_serialised_across_threads() -> None:
    """No promise comes into force while an acquisition is being sent, however the two threads interleave."""
    crossed: list[str] = []
    for _ in range(100):
        p = Promises(None, ttl=3.0, now=NOW)
        go = threading.Barrier(2)

        def acquire(p: Promises = p, go: threading.Barrier = go) -> None:
            go.wait()
            with p.acquisition(NOW) as refused:
                if refused is None:
                    for _ in range(50):
                        if p.active_until(NOW) is not None:
                            crossed.append("a promise came into force during an acquisition")

        def grant(p: Promises = p, go: threading.Barrier = go) -> None:
            go.wait()
            for _ in range(50):
                with contextlib.suppress(ValueError):
                    p.grant("pg-0", NOW, None)

        threads = [threading.Thread(target=acquire), threading.Thread(target=grant)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert crossed == []


def test_a_restarted_agent_keeps_its_promise_and_a_rebooted_one_keeps_a_full_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "promise"
    Promises(path, ttl=3.0, now=NOW).grant("pg-0", NOW, None)
    assert path.stat().st_mode & 0o777 == 0o600
    again = Promises(path, ttl=3.0, now=NOW + 1.0)
    assert again.active_until(NOW + 1.0) == NOW + 3.0
    assert Promises(path, ttl=3.0, now=NOW + 5.0).promise is None  # over: nothing kept
    boot = tmp_path / "boot_id"
    boot.write_text("another-boot\n")
    monkeypatch.setattr(failsafe, "BOOT_ID", boot)
    rebooted = Promises(path, ttl=3.0, now=7.0)  # the boot clock started again
    assert rebooted.active_until(7.0) == 10.0
    path.write_text("{not json")
    assert Promises(path, ttl=3.0, now=NOW).promise is None


def test_an_agent_restarted_in_the_outage_promises_the_leader_its_file_names_and_no_other(tmp_path: Path) -> None:
    path = tmp_path / "promise"
    Promises(path, ttl=3.0, now=NOW).grant("pg-0", NOW, None)
    restarted = Promises(path, ttl=3.0, now=NOW + 10.0)  # the old promise is over, its leader is remembered
    assert restarted.promise is None and restarted.remembered is not None
    assert why(None, remembered=restarted.remembered) is None
    assert "pg-0, not pg-2" in (why(None, leader="pg-2", remembered=restarted.remembered) or "")
    assert "has not read the store" in (why(None) or "")
