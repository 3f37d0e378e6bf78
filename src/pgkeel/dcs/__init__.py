"""Where nodes agree: a leader lease, member records and cluster state behind one interface.

``open_dcs(url, scope)`` picks the backend from the URL, so configuration stays one string:
``sqlite:///abs/path/file.db`` (one machine), ``etcd://host:port[,host:port...]`` (``etcds://`` for
TLS; certificates and credentials come as an `EtcdAccess`), or
``kubernetes://<namespace>[/<cluster>]`` (API server and credentials from the pod's environment).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pgkeel.dcs.base import DCS, ClusterView, DCSError, Leader, Member
from pgkeel.dcs.etcd import EtcdDCS
from pgkeel.dcs.etcd_access import EtcdAccess
from pgkeel.dcs.etcd_client import parse_endpoints
from pgkeel.dcs.sqlite import SQLiteDCS

__all__ = ["DCS", "ClusterView", "DCSError", "EtcdAccess", "Leader", "Member", "open_dcs"]


def open_dcs(url: str, scope: str, timeout: float = 1.0, etcd: EtcdAccess | None = None) -> DCS:
    """Open the store named by `url` for cluster `scope`; ValueError for a malformed URL."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        path = urlsplit(url).path
        if not rest.startswith("/") or not path or path.endswith("/"):
            raise ValueError(f"sqlite URL must be sqlite:///absolute/path/file.db: {url!r}")
        return SQLiteDCS(path, scope, timeout)
    if scheme in ("etcd", "etcds"):
        hosts = rest.split("/", 1)[0]
        endpoints = parse_endpoints(",".join(f"{'https' if scheme == 'etcds' else 'http'}://{h.strip()}"
                                             for h in hosts.split(",") if h.strip()))
        return EtcdDCS(endpoints, scope, timeout, etcd)
    if scheme == "kubernetes":
        namespace, _, cluster = rest.strip("/").partition("/")
        if not namespace or "/" in cluster or (cluster and cluster != scope):
            raise ValueError(f"kubernetes URL must be kubernetes://<namespace>[/{scope}]: {url!r}")
        # Imported here, not at the top: the official `kubernetes` client takes ~0.3 s to import
        # (measured), which every sqlite/etcd user (`pgkeel up`, `status`, local agents) would pay.
        from pgkeel.dcs.k8s_client import Endpoint
        from pgkeel.dcs.kubernetes import KubernetesDCS

        return KubernetesDCS(Endpoint.from_env(), namespace, scope, timeout)
    want = "sqlite:///path, etcd://host:port[,...], etcds://host:port[,...] or kubernetes://namespace"
    raise ValueError(f"unknown DCS URL (want {want}): {url!r}")
