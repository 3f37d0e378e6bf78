"""What the Kubernetes store needs from the cluster: the API calls it makes and the names it relies on.

The store owns this contract; `pgkeel.k8s` imports it to render what satisfies it (the Role from
`AGENT_API_CALLS`, the Services selecting on `ROLE_LABEL`, the labels that let the store find its
pods), so a rename here changes both sides at once.
"""

from __future__ import annotations

# (apiGroup, resource, verb); "" is the core group. The store refuses any call not listed here,
# and the rendered Role grants exactly these.
AGENT_API_CALLS: list[tuple[str, str, str]] = [
    # The leader and state Leases: optimistic concurrency by resourceVersion.
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
    # Member records and the role label live on the pods themselves.
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "pods", "patch"),
    # Self-driven rolling updates (pgkeel.dcs.k8s_pod): the StatefulSet's update revision, and a pod
    # deleting itself so the controller recreates it. Both restricted by name (NAMED_CALLS).
    ("apps", "statefulsets", "get"),
    ("", "pods", "delete"),
]

# --- the pods' controller ----------------------------------------------------------------
REVISION_LABEL = "controller-revision-hash"  # the StatefulSet controller's label: the pod's template revision
ROLL_LEASE_SUFFIX = "-roll"

# --- Leases ------------------------------------------------------------------------------
LEADER_LEASE_SUFFIX = "-leader"
STATE_LEASE_SUFFIX = "-state"

# --- labels and annotations on the member pods ----------------------------------------------
ROLE_LABEL = "pgkeel.dev/role"
ROLE_PRIMARY = "primary"
ROLE_REPLICA = "replica"
STATUS_ANNOTATION = "pgkeel.dev/status"


def leader_lease(name: str) -> str:
    """Name of the coordination.k8s.io Lease the agents compete for."""
    return f"{name}{LEADER_LEASE_SUFFIX}"


def state_lease(name: str) -> str:
    """Name of the Lease whose annotations hold the cluster-wide state (initialize, sync, ...)."""
    return f"{name}{STATE_LEASE_SUFFIX}"


def roll_lease(name: str) -> str:
    """Name of the Lease that holds the rolling-update lock (one pod replaces itself at a time)."""
    return f"{name}{ROLL_LEASE_SUFFIX}"


def stateful_set(name: str) -> str:
    """The StatefulSet of cluster `name` (the manifests name it after the cluster)."""
    return name


def named_calls(name: str, members: list[str]) -> dict[tuple[str, str, str], list[str]]:
    """The calls the Role restricts by resourceNames. RBAC cannot say "only your own pod", but the names of the
    pods the StatefulSet may run are known (`members`: pgkeel.k8s.layout.stateful_set_pods, scaling included),
    so a stolen token can delete no pod of anything else."""
    return {("apps", "statefulsets", "get"): [stateful_set(name)], ("", "pods", "delete"): list(members)}


def common_labels(name: str) -> dict[str, str]:
    """Labels on every object of a cluster."""
    return {
        "app.kubernetes.io/name": "pgkeel",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/managed-by": "pgkeel",
    }


def selector_labels(name: str) -> dict[str, str]:
    """Labels that select the pods of a cluster (stable: a StatefulSet selector is immutable)."""
    return {"app.kubernetes.io/name": "pgkeel", "app.kubernetes.io/instance": name}
