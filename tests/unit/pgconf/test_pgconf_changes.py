"""The diff `pgkeel apply` shows: rendered postgresql.conf old vs new, each change reload or restart, and the
direction of the standby-floor parameters."""

from __future__ import annotations

import pytest

from pgkeel.document import load_cluster_text
from pgkeel.pgconf import load_catalogue, render_config
from pgkeel.pgconf.changes import (
    diff_settings,
    floor_change,
    matches_setting,
    mixed_floor_error,
    parse_conf,
)

DOC = """
apiVersion: pgkeel.dev/v1alpha1
kind: PostgresCluster
metadata: {name: c1}
spec:
  instances: 3
  resources: {cpu: "1", memory: 512Mi}
  postgres: {version: 15, parameters: PARAMS}
"""


def rendered(params: str = "{}", memory: str = "512Mi") -> dict[str, str]:
    text = DOC.replace("PARAMS", params).replace("512Mi", memory)
    return parse_conf(render_config(load_cluster_text(text)).postgresql_conf)


def test_parse_conf_unquotes_strings_and_drops_comments() -> None:
    conf = "# c\nwork_mem = 4MB  # tuned: x = y\napplication_name = 'it''s # not a comment'\nssl = on\n"
    assert parse_conf(conf) == {"work_mem": "4MB", "application_name": "it's # not a comment", "ssl": "on"}


def test_a_reload_parameter_changes_by_reload_and_a_restart_one_by_restart() -> None:
    old = rendered()
    new = rendered("{log_min_duration_statement: 250ms, shared_buffers: 256MB}")
    changes = {c.name: c for c in diff_settings(15, old, new)}
    assert changes["log_min_duration_statement"].change == "reload"
    assert (changes["log_min_duration_statement"].old, changes["log_min_duration_statement"].new) == (None, "250ms")
    assert changes["log_min_duration_statement"].shown_old == "(default)"
    assert changes["shared_buffers"].change == "restart"


def test_more_memory_changes_every_tuned_value_that_follows_from_it() -> None:
    names = {c.name for c in diff_settings(15, rendered(), rendered(memory="2Gi"))}
    assert {"shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem"} <= names


def test_the_same_value_spelled_otherwise_is_no_change_and_no_change_is_an_empty_diff() -> None:
    assert diff_settings(15, {"work_mem": "1024kB", "ssl": "true"}, {"work_mem": "1MB", "ssl": "on"}) == []
    assert diff_settings(15, rendered(), rendered()) == []


def test_a_removed_parameter_goes_back_to_the_default_with_its_own_kind() -> None:
    (change,) = diff_settings(15, {"max_prepared_transactions": "10"}, {})
    assert (change.new, change.change, change.shown_new) == (None, "restart", "(default)")


def test_floor_parameters_raised_and_lowered_are_told_apart_against_the_default() -> None:
    floors = floor_change(15, {"max_connections": ("100", "200"), "max_prepared_transactions": (None, "0")})
    assert floors.raised == ("max_connections",) and floors.lowered == () and not floors.mixed
    floors = floor_change(15, {"max_connections": ("200", "100"), "max_locks_per_transaction": (None, "128")})
    assert floors.lowered == ("max_connections",) and floors.raised == ("max_locks_per_transaction",)
    assert floors.mixed
    message = mixed_floor_error(floors)
    assert "spec.postgres.parameters" in message and "two documents" in message
    assert floor_change(15, {"work_mem": ("1MB", "2MB")}).raised == ()  # not a floor parameter


@pytest.mark.parametrize(
    ("name", "wanted", "setting", "same"),
    [
        ("work_mem", "8MB", "8192", True),
        ("work_mem", "8MB", "4096", False),
        ("shared_buffers", "256MB", "32768", True),  # in 8kB pages
        ("log_min_duration_statement", "250ms", "250", True),
        ("log_min_duration_statement", "1s", "1000", True),
        ("jit", "off", "off", True),
        ("log_statement", "DDL", "ddl", True),
        ("application_name", "x", "y", False),
    ],
)
def test_a_value_as_written_matches_pg_settings_in_the_parameters_unit(
    name: str, wanted: str, setting: str, same: bool
) -> None:
    assert matches_setting(load_catalogue(15)[name], wanted, setting) is same
