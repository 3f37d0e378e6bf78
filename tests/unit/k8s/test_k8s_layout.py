"""The names and paths shared with the agent, and the Role generated from the agent's call list."""

from __future__ import annotations

import posixpath

from pgkeel.k8s import layout
from pgkeel.k8s.rbac import AGENT_API_CALLS, granted, granted_names, role_rules


def test_names() -> None:
    assert layout.headless_service("pg") == "pg-hl"
    assert layout.pod_fqdn("pg-0", "pg", "ns") == "pg-0.pg-hl.ns.svc"
    assert (layout.PG_PORT, layout.API_PORT) == (5432, 8008)
    assert layout.ROLE_LABEL == "pgkeel.dev/role" and layout.STATUS_ANNOTATION == "pgkeel.dev/status"


def test_paths_sit_where_the_seed_puts_them() -> None:
    assert layout.CONFIG_DIR == "/etc/postgresql"
    assert posixpath.dirname(layout.CONFIG_FILE) == posixpath.dirname(layout.HBA_FILE) == layout.CONFIG_DIR
    assert f"-c config_file={layout.CONFIG_FILE}" == layout.POSTGRES_ARGS
    # PGDATA is a subdirectory: initdb refuses a mount point holding lost+found.
    assert posixpath.dirname(layout.PGDATA) == layout.DATA_MOUNT


def test_selector_labels_are_a_subset_of_common_labels() -> None:
    common = layout.common_labels("pg")
    assert layout.selector_labels("pg").items() <= common.items()
    assert layout.ROLE_LABEL not in layout.selector_labels("pg")


def test_role_rules_group_calls_and_grant_nothing_more() -> None:
    calls = [("", "pods", "get"), ("", "pods", "get"), ("apps", "x", "list"), ("", "pods", "watch")]
    rules = role_rules(calls)
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch"]},
                     {"apiGroups": ["apps"], "resources": ["x"], "verbs": ["list"]}]
    assert granted(rules) == set(calls)
    assert granted(role_rules()) == set(AGENT_API_CALLS)


def test_named_calls_get_rules_of_their_own() -> None:
    calls = [("", "pods", "get"), ("", "pods", "delete"), ("apps", "statefulsets", "get")]
    rules = role_rules(calls, names={("", "pods", "delete"): ["a-0", "a-1"], ("apps", "statefulsets", "get"): ["a"]})
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                     {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"], "resourceNames": ["a-0", "a-1"]},
                     {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"], "resourceNames": ["a"]}]
    assert granted(rules) == set(calls)
    assert granted_names(rules) == {("", "pods", "get"): None, ("", "pods", "delete"): {"a-0", "a-1"},
                                    ("apps", "statefulsets", "get"): {"a"}}
