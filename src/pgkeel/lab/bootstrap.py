"""How fast a replica is cloned, against the physical limit: `cp -a` of the same data directory.

Runs on a plain local cluster (loopback, sqlite store): cloning does not involve the network
layout. The clone is timed end to end as an operator sees it: a replica's agent restarted on
an empty data directory until it reports streaming (pg_basebackup + start + catch-up).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import yaml

from pgkeel.lab.cluster import cluster_document
from pgkeel.local import LocalCluster

ROW_BYTES = 1170  # a 1000-character text row: 7 rows per 8 KiB heap page


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def run_bootstrap(size_bytes: int, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _text: None)
    root = Path(tempfile.mkdtemp(prefix="pgkeel-bootstrap-"))
    os.chmod(root, 0o755)
    local = LocalCluster(root / "cluster")
    doc = root / "cluster.yaml"
    document = cluster_document("async")
    document["spec"]["network"]["allowedCidrs"] = ["127.0.0.1/32"]
    doc.write_text(yaml.safe_dump(document))
    try:
        say("starting a local 3-node cluster")
        status = local.up(doc, timeout=120)
        primary = status["leader"]
        rows = max(1, size_bytes // ROW_BYTES)
        say(f"loading {rows} rows (~{size_bytes / 2**30:.2f} GiB) on {primary}")
        with psycopg.connect(local.node_dsn(primary), autocommit=True) as conn:
            conn.execute("CREATE TABLE fill (id bigint, pad text)")
            conn.execute(
                "INSERT INTO fill SELECT g, repeat(md5(g::text), 32)::varchar(1000) FROM generate_series(1, %s) g",
                (rows,),
            )
            conn.execute("CHECKPOINT")
        local.wait_healthy(300)
        replica = next(m["name"] for m in local.status()["members"] if m["name"] != primary)
        primary_data = local.layout.node(primary) / "data"
        data_bytes = _du(primary_data)

        say(f"re-cloning {replica} from an empty data directory")
        pid = local.agent_pid(replica)
        if pid:
            os.kill(pid, signal.SIGTERM)
            while local.agent_pid(replica):
                time.sleep(0.05)
        shutil.rmtree(local.layout.node(replica) / "data")
        started = time.monotonic()
        local.start_agent(replica)
        while True:
            snap = local.fetch(replica) or {}
            if (snap.get("postgres") or {}).get("streaming"):
                break
            if time.monotonic() - started > 1800:
                raise TimeoutError(f"{replica} not streaming within 30 min; see {local.layout.node(replica)}")
            time.sleep(0.05)
        clone_s = time.monotonic() - started

        say("cp -a of the primary's data directory (the physical limit)")
        target = root / "copy"
        started = time.monotonic()
        subprocess.run(["cp", "-a", str(primary_data), str(target)], check=True)
        subprocess.run(["sync", "-f", str(target)], check=True)
        cp_s = time.monotonic() - started
        return {
            "size_requested_bytes": size_bytes,
            "data_dir_bytes": data_bytes,
            "clone_s": clone_s,
            "cp_s": cp_s,
            "ratio": clone_s / cp_s if cp_s > 0 else None,
            "clone_mib_s": data_bytes / 2**20 / clone_s,
            "cp_mib_s": data_bytes / 2**20 / cp_s,
        }
    finally:
        local.down(purge=False)
        shutil.rmtree(root, ignore_errors=True)
