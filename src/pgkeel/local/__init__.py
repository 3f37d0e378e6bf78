"""A whole cluster on this machine."""

from pgkeel.local.cluster import LocalCluster

__all__ = ["LocalCluster"]
