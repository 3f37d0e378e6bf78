"""URL parsing, key layout and argument checks: no store is contacted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pgkeel.dcs import open_dcs
from pgkeel.dcs.base import check_ttl
from pgkeel.dcs.etcd import EtcdDCS, lease_seconds
from pgkeel.dcs.etcd_client import parse_endpoints, prefix_end
from pgkeel.dcs.keys import KeyLayout
from pgkeel.dcs.sqlite import SQLiteDCS


@pytest.mark.parametrize(
    "url",
    ["", "postgres://x", "sqlite://relative.db", "sqlite:///", "etcd://", "etcd://host-without-port", "etcd://,"],
)
def test_bad_urls_are_value_errors(url: str) -> None:
    with pytest.raises(ValueError):
        open_dcs(url, "c")


def test_etcd_url_lists_endpoints_without_contacting_them() -> None:
    store = open_dcs("etcd://127.0.0.1:2379, 10.0.0.2:2379", "c", timeout=0.2)
    assert isinstance(store, EtcdDCS)
    assert store.endpoints == ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
    store.close()


def test_sqlite_url(tmp_path: Path) -> None:
    store = open_dcs(f"sqlite://{tmp_path}/x.db", "c")
    assert isinstance(store, SQLiteDCS)
    store.close()
    assert (tmp_path / "x.db").exists()


def test_parse_endpoints_accepts_urls() -> None:
    assert parse_endpoints("http://a:1,https://b:2") == ["http://a:1", "https://b:2"]


@pytest.mark.parametrize(("ttl", "seconds"), [(0.001, 1), (0.3, 1), (1.0, 1), (1.01, 2), (30, 30)])
def test_lease_seconds_round_up(ttl: float, seconds: int) -> None:
    assert lease_seconds(ttl) == seconds


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
def test_bad_ttls(ttl: float) -> None:
    with pytest.raises(ValueError):
        check_ttl(ttl)


def test_key_layout() -> None:
    keys = KeyLayout("main")
    assert keys.leader == "/pgkeel/main/leader"
    assert keys.member("n0") == "/pgkeel/main/members/n0"
    assert keys.initialize == "/pgkeel/main/initialize"
    assert keys.sync == "/pgkeel/main/sync"
    assert keys.switchover == "/pgkeel/main/switchover"
    assert keys.history == "/pgkeel/main/history"
    with pytest.raises(ValueError):
        KeyLayout("a/b")
    with pytest.raises(ValueError):
        keys.member("")


def test_prefix_end_covers_exactly_the_prefix() -> None:
    import base64

    end = base64.b64decode(prefix_end("/pgkeel/a/"))
    assert end == b"/pgkeel/a0"
    assert b"/pgkeel/a/zzz" < end <= b"/pgkeel/a0"
    assert not (b"/pgkeel/a/" <= b"/pgkeel/ab/leader" < end), "scope 'ab' is outside scope 'a'"


def test_dcs_imports_nothing_of_ours_outside_dcs_nor_the_kubernetes_client() -> None:
    """dcs is below every other package; the kubernetes client is loaded only for kubernetes:// URLs."""
    code = (
        "import sys, pgkeel.dcs, pgkeel.dcs.kubernetes\n"
        "ours = sorted(m for m in sys.modules if m.startswith('pgkeel.') and not m.startswith('pgkeel.dcs'))\n"
        "assert ours == [], ours\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, pgkeel.dcs\nassert 'kubernetes' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)
