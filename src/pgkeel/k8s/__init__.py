"""What Kubernetes is told: manifests as plain dicts → YAML, and the CRD generated from the spec model.

Exports load lazily: the in-pod agent imports `pgkeel.k8s.layout` and `pgkeel.k8s.rbac` for the
shared names and must not pull in the config renderer (or risk an import cycle) to get them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AGENT_API_CALLS": "pgkeel.k8s.rbac",
    "role_rules": "pgkeel.k8s.rbac",
    "crd_manifest": "pgkeel.k8s.crd",
    "openapi_schema": "pgkeel.k8s.crd",
    "structural_problems": "pgkeel.k8s.crd",
    "dump_yaml": "pgkeel.k8s.manifests",
    "generate_secrets": "pgkeel.k8s.manifests",
    "render_manifests": "pgkeel.k8s.manifests",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pgkeel.k8s' has no attribute {name!r}")
    return getattr(import_module(module), name)
