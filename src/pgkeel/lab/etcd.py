"""A 3-member etcd cluster, member i inside node i's namespace, so a partitioned node loses the store.

With more than three nodes the members live in the first three namespaces. Member i listens
on 198.18.0.(11+i):2379 (clients) and :2380 (peers). Default raft timings
(100 ms heartbeat, 1 s election): the minimum lease is 2 s, below the default 3 s TTL.
"""

from __future__ import annotations

import base64
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx

from pgkeel.lab.netns import Network
from pgkeel.lab.procs import spawn, stop

ETCD_BIN = "/usr/bin/etcd"
CLIENT_PORT = 2379
PEER_PORT = 2380


@dataclass(frozen=True)
class EtcdServerTls:
    """Client-facing TLS: member i serves `cert_for(i)` signed by `ca`; peers stay on plain HTTP (lab only)."""

    ca: Path
    certs: list[tuple[Path, Path]]  # (cert, key) per member, each naming that member's address


class EtcdCluster:
    def __init__(self, net: Network, base: Path, members: int | None = None, tls: EtcdServerTls | None = None) -> None:
        self.net = net
        self.base = base
        self.size = members if members is not None else net.size
        self.tls = tls
        self.procs: list[Popen[bytes]] = []

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def client_url(self, i: int) -> str:
        return f"{self.scheme}://{self.net.address(i)}:{CLIENT_PORT}"

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
                f"--listen-client-urls={self.client_url(i)}",
                f"--advertise-client-urls={self.client_url(i)}",
                *self._tls_flags(i),
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

    def _tls_flags(self, i: int) -> list[str]:
        if self.tls is None:
            return []
        cert, key = self.tls.certs[i]
        return [f"--cert-file={cert}", f"--key-file={key}"]  # --trusted-ca-file would demand client certificates

    def healthy(self) -> bool:
        """Every member answers a linearizable read (a raft leader, all joined); before auth is on."""
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(self.tls.ca)) if self.tls else True
        for i in range(self.size):
            try:
                r = httpx.post(f"{self.client_url(i)}/v3/kv/range", json={"key": "AA=="}, timeout=0.5, verify=verify)
                if r.status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def stop(self) -> None:
        for proc in self.procs:
            stop(proc)
        self.procs.clear()


def _range_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1  # prefixes here end in '/', never 0xff
    return base64.b64encode(bytes(raw)).decode()


def enable_auth(
    url: str, verify: ssl.SSLContext | bool, root_password: str, user: str, password: str, prefix: str
) -> None:
    """Turn etcd auth on as an operator would: root (role root), and `user` with readwrite on `prefix` only.

    Over the v3 gateway (Debian's etcd-server has no etcdctl): user/add, role/add, role/grant,
    user/grant, auth/enable; each call must succeed."""
    role = f"{user}-rw"
    calls: list[tuple[str, dict[str, object]]] = [
        ("auth/user/add", {"name": "root", "password": root_password}),
        ("auth/role/add", {"name": "root"}),
        ("auth/user/grant", {"user": "root", "role": "root"}),
        ("auth/user/add", {"name": user, "password": password}),
        ("auth/role/add", {"name": role}),
        ("auth/role/grant", {"name": role, "perm": {"permType": "READWRITE",
                                                    "key": base64.b64encode(prefix.encode()).decode(),
                                                    "range_end": _range_end(prefix)}}),
        ("auth/user/grant", {"user": user, "role": role}),
        ("auth/enable", {}),
    ]
    for method, body in calls:
        r = httpx.post(f"{url}/v3/{method}", json=body, timeout=5.0, verify=verify)
        if r.status_code != 200:
            raise RuntimeError(f"etcd {method}: HTTP {r.status_code} {r.text.strip()}")
