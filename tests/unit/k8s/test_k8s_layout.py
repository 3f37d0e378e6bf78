"""The names and paths shared with the agent, and the Role generated from the agent's call list."""

from __future__ import annotations

import posixpath

from pgkeel.k8s import layout as L
from pgkeel.k8s.rbac import AGENT_API_CALLS, granted, role_rules


def test_names() -> None:
    assert L.headless_service("pg") == "pg-hl"
    assert L.pod_fqdn("pg-0", "pg", "ns") == "pg-0.pg-hl.ns.svc"
    assert (L.PG_PORT, L.API_PORT) == (5432, 8008)
    assert L.ROLE_LABEL == "pgkeel.dev/role" and L.STATUS_ANNOTATION == "pgkeel.dev/status"


def test_paths_sit_where_the_seed_puts_them() -> None:
    assert L.CONFIG_DIR == "/etc/postgresql"
    assert posixpath.dirname(L.CONFIG_FILE) == posixpath.dirname(L.HBA_FILE) == L.CONFIG_DIR
    assert f"-c config_file={L.CONFIG_FILE}" == L.POSTGRES_ARGS
    # PGDATA is a subdirectory: initdb refuses a mount point holding lost+found.
    assert posixpath.dirname(L.PGDATA) == L.DATA_MOUNT


def test_selector_labels_are_a_subset_of_common_labels() -> None:
    common = L.common_labels("pg")
    assert L.selector_labels("pg").items() <= common.items()
    assert L.ROLE_LABEL not in L.selector_labels("pg")


def test_role_rules_group_calls_and_grant_nothing_more() -> None:
    calls = [("", "pods", "get"), ("", "pods", "get"), ("apps", "x", "list"), ("", "pods", "watch")]
    rules = role_rules(calls)
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch"]},
                     {"apiGroups": ["apps"], "resources": ["x"], "verbs": ["list"]}]
    assert granted(rules) == set(calls)
    assert granted(role_rules()) == set(AGENT_API_CALLS)
