"""Start one member in the foreground: check the machine and the store, then hand over to the agent.

Order matters: as root, only the member's base directory is created and given to `postgres`;
everything after runs as `postgres` (the agent's own drop), so every file it writes is its own.
Problems that a person can fix (unreachable etcd, wrong credentials, a second agent for the same
member) end the command with one message naming what to check, never with a traceback.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pgkeel.agent.run import run_agent
from pgkeel.dcs import DCSError, open_dcs
from pgkeel.document import PostgresCluster
from pgkeel.ha.config import AgentConfig
from pgkeel.instance import RunAs, drop_privileges
from pgkeel.node.config import NodeError, NodePaths, prepare_node

STORE_CHECK_SECONDS = 5.0  # long enough for a TLS handshake and an authenticate to a loaded etcd


def check_store(config: AgentConfig) -> None:
    """One read of the cluster's keys; NodeError saying which endpoints failed and what to check."""
    try:
        dcs = open_dcs(config.dcs_url, config.scope, timeout=STORE_CHECK_SECONDS, etcd=config.etcd)
    except ValueError as exc:
        raise NodeError(f"spec.store.etcd: {exc}") from None
    try:
        dcs.view()
    except DCSError as exc:
        raise NodeError(
            f"cannot use the store {config.dcs_url}: {exc}. Check that etcd runs and listens there "
            "(spec.store.etcd.endpoints), that this machine reaches it (firewall, port 2379), that "
            "spec.store.etcd.tls.ca signed its certificate, and spec.store.etcd.auth's user and password file"
        ) from None
    finally:
        dcs.close()


def hold_lock(path: Path) -> int:
    """One agent per member and directory: a second `node run` exits at once naming the first one's pid."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise NodeError(f"member already running from {path.parent} (agent pid {holder}); "
                        "stop it first (systemctl stop …) or use another --dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd  # held (open) for the life of the process


def claim_base(paths: NodePaths) -> None:
    """Create the base directory and, when root, give it to postgres: the only thing done as root."""
    paths.base.mkdir(parents=True, exist_ok=True, mode=0o700)
    RunAs.for_current_process().chown(paths.base)


def run_node(cluster: PostgresCluster, config: AgentConfig, paths: NodePaths) -> int:
    """Drop to postgres, lock the member's directory, write its config files, check the store, run the agent."""
    if cluster.spec.bootstrap.from_backup is not None:
        raise ValueError("spec.bootstrap.fromBackup: restoring a new cluster is only available with `pgkeel up` yet; "
                         "remove spec.bootstrap.fromBackup")
    claim_base(paths)
    drop_privileges()
    fd = hold_lock(paths.lock)
    try:
        prepare_node(cluster, config, paths)
        check_store(config)
        return run_agent(config)
    finally:
        os.close(fd)
