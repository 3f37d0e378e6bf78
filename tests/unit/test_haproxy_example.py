"""docs/haproxy.md shows examples/haproxy.cfg as it is: the config tests/e2e/test_haproxy.py runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_haproxy_config_is_the_tested_example() -> None:
    config = (ROOT / "examples" / "haproxy.cfg").read_text()
    body = config[config.index("\nglobal\n") + 1 :]
    assert body in (ROOT / "docs" / "haproxy.md").read_text(), "paste examples/haproxy.cfg (from `global`) into it"


def test_the_example_checks_the_patroni_probe_paths() -> None:
    config = (ROOT / "examples" / "haproxy.cfg").read_text()
    assert "option httpchk OPTIONS /primary" in config and "option httpchk OPTIONS /replica" in config
    assert config.count("maxconn 100 check port") == 6 and "on-marked-down shutdown-sessions" in config
