"""What Kubernetes is told: manifests as plain dicts → YAML, and the CRD generated from the spec model.

Import from the modules (`pgkeel.k8s.manifests`, `.crd`, `.layout`, `.rbac`): the package
itself exports nothing, so the in-pod agent importing `layout` does not pull in the renderer.
"""
