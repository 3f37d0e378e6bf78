"""The PostgresCluster document: models, quantities, loading with field-path errors."""

from pgkeel.document.check import DocumentCheck, check_cluster, check_cluster_file
from pgkeel.document.load import SpecError, load_cluster, load_cluster_text, parse_cluster
from pgkeel.document.model import (
    ClusterSpec,
    EtcdAuth,
    EtcdStore,
    EtcdTls,
    Failover,
    MemberSpec,
    Network,
    PostgresCluster,
    PostgresSettings,
    Replication,
    Resources,
    Storage,
    Store,
    Users,
)
from pgkeel.document.quantity import QuantityError, format_bytes, parse_bytes, parse_cpu_millis

__all__ = [
    "ClusterSpec",
    "DocumentCheck",
    "EtcdAuth",
    "EtcdStore",
    "EtcdTls",
    "Failover",
    "MemberSpec",
    "Network",
    "PostgresCluster",
    "PostgresSettings",
    "QuantityError",
    "Replication",
    "Resources",
    "SpecError",
    "Storage",
    "Store",
    "Users",
    "check_cluster",
    "check_cluster_file",
    "format_bytes",
    "load_cluster",
    "load_cluster_text",
    "parse_bytes",
    "parse_cluster",
    "parse_cpu_millis",
]
