"""What the in-pod agent may do against the Kubernetes API, and the Role that grants exactly that.

`AGENT_API_CALLS` is the single source of truth: the agent's Kubernetes store owns it
(`pgkeel.dcs.k8s_contract`) and refuses to make a call it does not list, and the rendered Role is
generated from it here, so a test can prove the Role grants what the agent calls and nothing more.
"""

from __future__ import annotations

from typing import Any

from pgkeel.dcs.k8s_contract import AGENT_API_CALLS

__all__ = ["AGENT_API_CALLS", "granted", "role_rules"]


def role_rules(calls: list[tuple[str, str, str]] = AGENT_API_CALLS) -> list[dict[str, Any]]:
    """PolicyRules granting `calls`: one rule per (apiGroup, resource), verbs in the order listed."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for group, resource, verb in calls:
        verbs = grouped.setdefault((group, resource), [])
        if verb not in verbs:
            verbs.append(verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": verbs} for (group, resource), verbs in grouped.items()
    ]


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) a list of PolicyRules allows; `*` is kept literally so tests catch it."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }
