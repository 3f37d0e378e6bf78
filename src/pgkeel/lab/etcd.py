"""A 3-member etcd cluster, member i inside node i's namespace, so a partitioned node loses the store.

With more than three nodes the members live in the first three namespaces. Member i listens
on 198.18.0.(11+i):2379 (clients) and :2380 (peers). Default raft timings
(100 ms heartbeat, 1 s election): the minimum lease is 2 s, below the default 3 s TTL.
"""

from __future__ import annotations

import time
from pathlib import Path
from subprocess import Popen

import httpx

from pgkeel.lab.netns import Network
from pgkeel.lab.procs import spawn, stop

ETCD_BIN = "/usr/bin/etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380


class EtcdCluster:
    def __init__(self, net: Network, base: Path, members: int | None = None) -> None:
        self.net = net
        self.base = base
        self.size = members if members is not None else net.size
        self.procs: list[Popen[bytes]] = []

    def name(self, i: int) -> str:
        return f"etcd{i}"

    @property
    def url(self) -> str:
        hosts = ",".join(f"{self.net.address(i)}:{CLIENT_PORT}" for i in range(self.size))
        return f"etcd://{hosts}"

    def start(self, timeout: float = 30.0) -> None:
        net = self.net
        initial = ",".join(f"{self.name(i)}=http://{net.address(i)}:{PEER_PORT}" for i in range(self.size))
        for i in range(self.size):
            addr = net.address(i)
            argv = [
                *net.exec_prefix(i),
                ETCD_BIN,
                f"--name={self.name(i)}",
                f"--data-dir={self.base / self.name(i)}",
                f"--listen-client-urls=http://{addr}:{CLIENT_PORT}",
                f"--advertise-client-urls=http://{addr}:{CLIENT_PORT}",
                f"--listen-peer-urls=http://{addr}:{PEER_PORT}",
                f"--initial-advertise-peer-urls=http://{addr}:{PEER_PORT}",
                f"--initial-cluster={initial}",
                f"--initial-cluster-token=pklab-{net.tag}",
                "--initial-cluster-state=new",
                # Without pre-vote (off by default in 3.4) a member cut off by a partition keeps
                # raising its term and, when the link heals, forces a new election: seconds without
                # a leader, which fences a healthy primary.
                "--pre-vote",
                "--log-level=warn",
            ]
            self.procs.append(spawn(argv, self.base / f"{self.name(i)}.log"))
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd cluster not healthy within {timeout:g}s; see {self.base}/etcd*.log")
            time.sleep(0.1)

    def healthy(self) -> bool:
        """Every member answers a linearizable read (so there is a raft leader and all are joined)."""
        for i in range(self.size):
            try:
                r = httpx.post(
                    f"http://{self.net.address(i)}:{CLIENT_PORT}/v3/kv/range", json={"key": "AA=="}, timeout=0.5
                )
                if r.status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)
        self.procs.clear()
