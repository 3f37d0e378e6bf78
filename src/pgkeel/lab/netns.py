"""Separate network hosts on one machine: a bridge, one namespace + veth per node, 198.18.0.0/24.

Another /24 inside 198.18.0.0/15 (`Network(subnet="198.18.5")`) runs beside it: its own lock
file, its own addresses, bridge and namespace names carry a random tag, so nothing collides.

A partition is `ip link set eth0 down` inside the node's namespace (tc netem does not work on
our kernels). The host side of the bridge gets 198.18.0.1 so the lab's writers can reach the
nodes; namespaces get no default route. Teardown removes exactly what this object created.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SUBNET_PREFIX = "198.18.0"
HOST_ADDRESS = f"{SUBNET_PREFIX}.1"
FIRST_NODE = 11  # node i gets 198.18.0.(11 + i)


LOCK_FILE = Path("/run/pgkeel-lab.lock")


def lock_file(subnet: str = SUBNET_PREFIX) -> Path:
    """The lock of one /24: the default one keeps its historic name (running labs hold it)."""
    return LOCK_FILE if subnet == SUBNET_PREFIX else LOCK_FILE.with_name(f"pgkeel-lab-{subnet}.lock")


@contextlib.contextmanager
def lab_lock(subnet: str = SUBNET_PREFIX) -> Iterator[None]:
    """One lab network per /24 at a time: they share its addresses (and timings suffer from sharing CPUs)."""
    fd = os.open(lock_file(subnet), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


@dataclass
class Network:
    """N namespaces on one bridge. Use as a context manager; `close()` is idempotent."""

    size: int
    subnet: str = SUBNET_PREFIX  # the first three octets of the /24; the bridge gets .1, node i .(11 + i)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    created: list[tuple[str, str]] = field(default_factory=list)  # ("netns"|"link", name), in creation order

    @property
    def bridge(self) -> str:
        return f"pkbr{self.tag}"

    def namespace(self, i: int) -> str:
        return f"pk{self.tag}-n{i}"

    def address(self, i: int) -> str:
        return f"{self.subnet}.{FIRST_NODE + i}"

    @property
    def host_address(self) -> str:
        return f"{self.subnet}.1"

    def host_veth(self, i: int) -> str:
        return f"pk{self.tag}v{i}"  # <= 15 chars (IFNAMSIZ)

    def __enter__(self) -> Network:
        atexit.register(self.close)
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self.created.append(("link", self.bridge))
        ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i in range(self.size):
            ns, outer = self.namespace(i), self.host_veth(i)
            ip("netns", "add", ns)
            self.created.append(("netns", ns))
            ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.created.append(("link", outer))
            ip("link", "set", outer, "master", self.bridge)
            ip("link", "set", outer, "up")
            ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def partition(self, i: int) -> None:
        """Cut node i off from every peer, the store and the host's writers."""
        ip("-n", self.namespace(i), "link", "set", "eth0", "down")

    def heal(self, i: int) -> None:
        ns = self.namespace(i)
        ip("-n", ns, "link", "set", "eth0", "up")

    def exec_prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(i)]

    def close(self) -> None:
        """Delete what we created, newest first; a veth dies with its namespace, so links go first."""
        while self.created:
            kind, name = self.created.pop()
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                if kind == "netns":
                    ip("netns", "delete", name, check=False)
                else:
                    ip("link", "delete", name, check=False)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


def leftovers() -> list[str]:
    """Namespaces and links named like the lab's (pk<hex>-n*, pkbr*): for tests asserting a clean host."""
    found = [line.split()[0] for line in ip("netns", "list", check=False).stdout.splitlines() if line.strip()]
    names = [n for n in found if n.startswith("pk") and "-n" in n]
    links = ip("-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith("pkbr") or (name.startswith("pk") and "v" in name[2:] and len(name) <= 15):
                names.append(name)
    return names
