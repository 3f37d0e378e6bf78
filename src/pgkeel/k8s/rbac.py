"""What the in-pod agent may do against the Kubernetes API, and the Role that grants exactly that.

`AGENT_API_CALLS` is the single source of truth: the agent's Kubernetes store owns it
(`pgkeel.dcs.k8s_contract`) and refuses to make a call it does not list, and the rendered Role is
generated from it here, so a test can prove the Role grants what the agent calls and nothing more.
Calls the store restricts by name (`named_calls`: get its own StatefulSet, delete member pods) get
rules of their own with `resourceNames`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgkeel.dcs.k8s_contract import AGENT_API_CALLS, named_calls

__all__ = ["AGENT_API_CALLS", "granted", "granted_names", "named_calls", "role_rules"]

Call = tuple[str, str, str]


def role_rules(
    calls: list[Call] = AGENT_API_CALLS, names: Mapping[Call, list[str]] | None = None
) -> list[dict[str, Any]]:
    """PolicyRules granting `calls`: one rule per (apiGroup, resource), verbs in the order listed; a call in
    `names` only on those objects, in a rule per (apiGroup, resource, names)."""
    names = names or {}
    grouped: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for group, resource, verb in calls:
        only = tuple(names.get((group, resource, verb), ()))
        verbs = grouped.setdefault((group, resource, only), [])
        if verb not in verbs:
            verbs.append(verb)
    rules: list[dict[str, Any]] = []
    for (group, resource, only), verbs in grouped.items():
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": verbs}
        if only:
            rule["resourceNames"] = list(only)
        rules.append(rule)
    return rules


def granted(rules: list[dict[str, Any]]) -> set[Call]:
    """Every (apiGroup, resource, verb) a list of PolicyRules allows; `*` is kept literally so tests catch it."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def granted_names(rules: list[dict[str, Any]]) -> dict[Call, set[str] | None]:
    """For each granted call, the object names it is limited to; None: any object (no resourceNames)."""
    found: dict[Call, set[str] | None] = {}
    for rule in rules:
        only = rule.get("resourceNames")
        for call in granted([rule]):
            if only is None or found.get(call, set()) is None:
                found[call] = None
            else:
                found[call] = (found.get(call) or set()) | set(only)
    return found
