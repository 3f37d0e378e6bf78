"""Write outage through HAProxy's rw port during a switchover, with examples/haproxy.cfg (Patroni's style).

    .venv/bin/python bench/haproxy_switchover.py [--switchovers 5] [--mode quorum|async]

Starts a local 3-node cluster (real PostgreSQL 15, as `pgkeel up` does) in a temp dir and HAProxy in front
of it, then a writer that commits one row every 20 ms through the rw port and reconnects on any error.
Each switchover goes to the next member in turn; its outage is the longest gap between two successful
commits from 1 s before the request until HAProxy routes rw to the new primary and 20 more commits
landed. Prints each outage and the median; asserts nothing. Stops everything it started by PID.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from pgkeel.lab.workload import Writer, steady_writer
from pgkeel.local import LocalCluster
from pgkeel.local.haproxy import HAProxy, server_names

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 0.02  # the writer's pause between commits


def document(directory: Path, mode: str) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    doc["metadata"]["name"] = "bench-haproxy"
    doc["spec"]["resources"] = {"cpu": "1", "memory": "512Mi"}
    doc["spec"]["replication"] = {"mode": mode}
    path = directory / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switchovers", type=int, default=5)
    parser.add_argument("--mode", choices=("quorum", "async"), default="quorum")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="pgkeel-bench-haproxy-", dir="/tmp"))
    os.chmod(base, 0o755)  # the agents run as the postgres user
    cluster = LocalCluster(base / "cluster")
    proxy: HAProxy | None = None
    writer: Writer | None = None
    try:
        cluster.up(document(base, args.mode), timeout=90)
        cluster.wait_healthy(timeout=60)
        members = cluster.cluster().member_names()
        servers = {member: server for server, member in server_names(cluster).items()}
        (base / "haproxy").mkdir()
        proxy = HAProxy(ROOT / "examples" / "haproxy.cfg", cluster, base / "haproxy").start()
        leader = cluster.status()["leader"]
        proxy.wait_servers("rw", {servers[leader]})
        writer = steady_writer("haproxy-rw", cluster.port_dsn(proxy.rw_port), INTERVAL)
        writer.wait_commits(50)
        outages, settles = [], []
        for i in range(args.switchovers):
            target = members[(members.index(leader) + 1) % len(members)]
            started = time.monotonic()
            cluster.switchover(target, wait=60)
            proxy.wait_servers("rw", {servers[target]}, timeout=30)
            settles.append(time.monotonic() - started)
            writer.wait_commits(20)
            outages.append(writer.longest_gap(started - 1.0))
            print(f"switchover {i + 1}: {leader} -> {target}: rw write outage {outages[-1]:.2f}s "
                  f"(HAProxy routed rw to {target} {settles[-1]:.2f}s after the request)", flush=True)
            leader = target
            cluster.wait_healthy(timeout=60)
            proxy.wait_servers("ro", {servers[m] for m in members if m != leader}, timeout=60)
        print(f"\nmode {args.mode}, {args.switchovers} switchovers, writer every {INTERVAL * 1000:.0f} ms through "
              f"HAProxy rw (inter 1s fall 2 rise 1):")
        print(f"  rw write outage: median {statistics.median(outages):.2f}s, min {min(outages):.2f}s, "
              f"max {max(outages):.2f}s")
        print(f"  request -> HAProxy rw on the new primary: median {statistics.median(settles):.2f}s")
        print(f"  writer errors (each one reconnect): {writer.errors}")
    finally:
        if writer is not None:
            writer.stop()
            writer.join(timeout=30)
        if proxy is not None:
            proxy.stop()
        try:
            cluster.down(purge=True)
        finally:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
