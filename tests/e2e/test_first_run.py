"""A new user's first run: `make up` works from any clone, and `up` never waits in silence."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pgkeel.local import LocalCluster
from pgkeel.local.cluster import AgentExited
from pgkeel.local.runtime import STATE_ROOT, place_cluster_dir, readable_by, runtime_id

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the postgres user only matters when started as root")


@needs_root
def test_make_up_from_a_clone_the_postgres_user_cannot_read() -> None:
    """As root under /root (a 0700 folder): `make up` installs what it needs, starts 3 streaming nodes."""
    private = Path(tempfile.mkdtemp(prefix="pgkeel-clone-", dir="/root"))  # mode 0700
    clone = private / "pgkeel"
    try:
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True, timeout=120)
        assert not readable_by(clone / "src" / "pgkeel" / "__init__.py")
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        up = subprocess.run(["make", "up"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "not readable by the postgres OS user" in up.stderr
        status = subprocess.run([".venv/bin/pgkeel", "status", "--json"], cwd=clone, capture_output=True, text=True,
                                timeout=60, check=True)
        members = json.loads(status.stdout)["members"]
        assert sorted(m["role"] for m in members) == ["primary", "replica", "replica"]
        assert all(m["state"] == "streaming" for m in members if m["role"] == "replica")
        # the agents run from the copy, which carries pgkeel's metadata: /status and pgkeel_info know the version
        assert {m.get("version") for m in members} == {importlib.metadata.version("pgkeel")}
        again = subprocess.run(["make", "up"], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]  # a no-op on a running cluster
    finally:
        if (clone / ".venv" / "bin" / "pgkeel").exists():
            down = [".venv/bin/pgkeel", "down", "--purge", "--yes"]
            subprocess.run(down, cwd=clone, capture_output=True, timeout=120)
        shutil.rmtree(STATE_ROOT / "runtime" / runtime_id(str(clone / ".venv")), ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)


@needs_root
def test_an_explicit_dir_the_postgres_user_cannot_reach_is_refused_at_once() -> None:
    private = Path(tempfile.mkdtemp(prefix="pgkeel-dir-", dir="/root"))
    try:
        with pytest.raises(ValueError, match=r"--dir .*cannot reach it.*choose a directory it can read"):
            place_cluster_dir(private / "cluster", default=False)
        assert not (private / "cluster").exists()  # nothing was changed
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_up_reports_an_agent_that_exits_at_once_with_the_end_of_its_log(
        document_writer: Callable[..., Path]) -> None:
    base = Path(tempfile.mkdtemp(prefix="pgkeel-e2e-", dir="/tmp"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "cluster")
    blocker = socket.socket()
    try:
        doc = document_writer(base)
        cluster.prepare(doc)
        victim = cluster.cluster().member_names()[1]
        port = cluster.layout.load_state()["api_ports"][victim]
        blocker.bind(("127.0.0.1", port))  # that agent cannot serve its API and exits
        blocker.listen()
        started = time.monotonic()
        with pytest.raises(AgentExited) as exc:
            cluster.up(doc, timeout=120)
        assert time.monotonic() - started < 60, "reported only after the timeout"
        message = str(exc.value)
        assert f"the agent of {victim} exited" in message and "agent.log" in message
        assert "address already in use" in message.lower(), message  # the log's own words
    finally:
        blocker.close()
        cluster.down(purge=True)
        shutil.rmtree(base, ignore_errors=True)
