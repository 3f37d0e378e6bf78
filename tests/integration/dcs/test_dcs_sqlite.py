"""sqlite-only behaviour: WAL, reboot handling of monotonic expiries, unusable files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pgkeel.dcs import DCSError, open_dcs
from pgkeel.dcs.sqlite import SQLiteDCS, boot_id


def test_file_is_in_wal_mode(tmp_path: Path) -> None:
    store = open_dcs(f"sqlite://{tmp_path}/dcs.db", "c")
    store.close()
    with sqlite3.connect(tmp_path / "dcs.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_new_boot_voids_leases_but_keeps_terms(tmp_path: Path) -> None:
    path = tmp_path / "dcs.db"
    store = SQLiteDCS(path, "c")
    assert store.acquire_leader("n0", 3600.0)
    store.set_member("n0", {"role": "primary"}, 3600.0)
    assert store.initialize("sysid")
    term = store.view().leader.term  # type: ignore[union-attr]
    store.close()
    with sqlite3.connect(path) as conn:  # as if the file were written before a reboot
        conn.execute("UPDATE meta SET value = 'an-earlier-boot' WHERE key = 'boot_id'")
    store = SQLiteDCS(path, "c")
    view = store.view()
    assert view.leader is None and view.members == {}
    assert view.initialize == "sysid", "cluster state survives a reboot"
    assert store.acquire_leader("n1", 10.0)
    assert store.view().leader.term > term  # type: ignore[union-attr]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'boot_id'").fetchone()[0] == boot_id()
    store.close()


def test_missing_directory_is_a_dcserror(tmp_path: Path) -> None:
    with pytest.raises(DCSError):
        SQLiteDCS(tmp_path / "absent" / "dcs.db", "c")


def test_garbage_file_is_a_dcserror(tmp_path: Path) -> None:
    path = tmp_path / "dcs.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DCSError):
        SQLiteDCS(path, "c")


def test_new_boot_drops_switchover_but_keeps_history(tmp_path: Path) -> None:
    path = tmp_path / "dcs.db"
    store = SQLiteDCS(path, "c")
    assert store.acquire_leader("n0", 3600.0)
    assert store.set_history("n0", {"leader": "n0", "lsn": "0/3000060"})
    store.set_switchover({"to": "n1"}, ttl=3600.0)
    store.close()
    with sqlite3.connect(path) as conn:  # as if the file were written before a reboot
        conn.execute("UPDATE meta SET value = 'an-earlier-boot' WHERE key = 'boot_id'")
    store = SQLiteDCS(path, "c")
    view = store.view()
    assert view.leader is None and view.switchover is None, "monotonic expiries of another boot mean nothing"
    assert view.history == {"leader": "n0", "lsn": "0/3000060"}, "the leader history survives a reboot"
    store.close()


def test_unexpiring_switchover_of_an_older_file_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "dcs.db"
    SQLiteDCS(path, "c").close()
    with sqlite3.connect(path) as conn:  # how files kept requests before they expired
        conn.execute("INSERT INTO state (scope, key, value, version) VALUES ('c', 'switchover', '{\"to\": \"n1\"}', 1)")
    store = SQLiteDCS(path, "c")
    assert store.view().switchover is None
    store.close()
