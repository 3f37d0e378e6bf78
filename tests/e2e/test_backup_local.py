"""Backups of a local 3-node cluster and point-in-time recovery into a new one, as a user runs them.

`pgkeel backup now` copies from a streaming replica, and `pgkeel backup verify` proves it restores (a
green drill with the canary written after it); after a switchover and more writes, a new
restore from that backup to `latest` (`pgkeel up` of a document with spec.bootstrap.fromBackup) replays
across the timeline switch; the member with the restored data founds the new cluster, the others clone it,
and every row is there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from pgkeel.backup.canary import write_canary
from pgkeel.local import LocalCluster, restore
from pgkeel.local.backups import drill_scratch
from pgkeel.local.layout import chown_for_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="no pgbackrest")]


def pgkeel(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgkeel", *args, "--dir", str(cluster.layout.root)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgkeel-e2e-bk-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    made = [LocalCluster(root.parent) for root in sorted(path.glob("*/cluster.yaml"))]
    try:
        for cluster in made:
            cluster.down(purge=True)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _rows(cluster: LocalCluster) -> list[int]:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id").fetchall()]


def _insert(cluster: LocalCluster, ids: range) -> None:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        for i in ids:
            conn.execute("INSERT INTO t VALUES (%s)", (i,))


def _archive_now(cluster: LocalCluster) -> None:
    """Close the current WAL segment on the primary and wait until pgBackRest has archived it."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + 60
        while (conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0] or "") < segment:  # type: ignore[index]
            assert time.monotonic() < deadline, f"{segment} not archived within 60 s"
            time.sleep(0.2)


def _archive_status(cluster: LocalCluster, member: str) -> dict[str, object]:
    """The member's /status archive, once it reported one (the watch samples every 2 s)."""
    deadline = time.monotonic() + 30
    while not (archive := (cluster.fetch(member) or {}).get("archive")):
        assert time.monotonic() < deadline, f"{member} reports no archive in /status"
        time.sleep(0.5)
    return archive


def _archived_segments(repo: Path) -> dict[int, list[int]]:
    """Segment numbers in the repository per timeline (16 MiB segments: 256 per log file; partials apart)."""
    found: dict[int, list[int]] = {}
    for path in repo.glob("archive/e2e/*/*/*"):
        name = path.name.split("-")[0]
        if len(name) == 24 and not path.name.endswith(".partial"):
            found.setdefault(int(name[:8], 16), []).append(int(name[8:16], 16) * 256 + int(name[16:], 16))
    return {tl: sorted(seg) for tl, seg in found.items()}


@pytest.mark.timeout(900)
def test_backup_from_a_standby_then_switchover_then_a_restore_to_latest_has_every_row(
    base: Path, document_writer: Callable[..., Path]
) -> None:
    repo = base / "repo"
    repo.mkdir()
    chown_for_postgres(repo)
    doc = document_writer(base)
    source_doc = yaml.safe_load(doc.read_text())
    source_doc["spec"]["backup"] = {"repositories": [{"volume": {"path": str(repo)}}],  # no schedule: the test
                                    "schedule": {"full": None, "diff": None, "drill": None}}  # counts backups
    doc.write_text(yaml.safe_dump(source_doc))
    source = LocalCluster(base / "source")
    source.up(doc, timeout=90)
    with psycopg.connect(source.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    _insert(source, range(1, 51))
    first_primary = source.status()["leader"]
    _archive_now(source)  # the agent created the stanza by itself: `up` alone archives
    # Not failed_count == 0: a segment closed before the agent created the stanza fails once and is retried;
    # the watch samples every 2 s, so its report may lag the archive by one sample.
    deadline = time.monotonic() + 30
    while True:
        archive = _archive_status(source, first_primary)
        if str(archive["line"]).startswith("archiving ok") and archive["failing"] is False:
            break
        assert time.monotonic() < deadline, archive
        time.sleep(0.5)
    metrics = httpx.get(source.api_url(first_primary) + "/metrics", timeout=5).text
    assert 'pgkeel_archive_backlog_bytes{cluster="e2e"' in metrics
    assert "pgkeel_archive_last_archived_age_seconds{" in metrics
    shown = pgkeel(source, "status")
    assert f"{first_primary}: archiving ok: backlog" in shown.stdout, shown.stdout + shown.stderr

    done = pgkeel(source, "backup", "now", "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["source"] != run["primary"] and run["backup"]["type"] == "full"  # copied from a standby
    listed = json.loads(pgkeel(source, "backup", "list", "--json").stdout)
    assert [b["label"] for b in listed["backups"]] == [run["backup"]["label"]]
    with psycopg.connect(source.dsn(), autocommit=True) as conn:
        write_canary(conn, first_primary)
    _archive_now(source)
    verified = pgkeel(source, "backup", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    drill = json.loads(verified.stdout)
    print(f"\nrestore drill: {drill['duration_s']} s, checks {[c['detail'] for c in drill['checks']]}")
    # the agent writes a canary row every minute too: at least the test's one is in the copy
    assert drill["ok"] and drill["backup"] == run["backup"]["label"] and drill["canary_rows"] >= 1, drill
    assert not drill_scratch(source.layout).exists()
    drills = [r for r in source.get_any("/backups")["results"] if r["kind"] == "drill"]
    assert drills[-1]["member"] != first_primary  # run on a streaming replica: the primary is spared
    deadline = time.monotonic() + 15  # the leader's agent ran it and recorded it; /status shows it next round
    while "drill GREEN" not in (shown := pgkeel(source, "status")).stdout:
        assert time.monotonic() < deadline, shown.stdout
        time.sleep(1)
    metrics = httpx.get(source.api_url(first_primary) + "/metrics", timeout=5).text
    assert f'pgkeel_drill_success{{cluster="e2e",member="{first_primary}"}} 1.0' in metrics
    shown = pgkeel(source, "backup", "verify")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "restore drill GREEN" in shown.stdout and "archive-end: replayed through" in shown.stdout

    _insert(source, range(51, 101))
    status = source.switchover()
    assert status["leader"] != run["primary"]
    _insert(source, range(101, 151))  # on the new timeline, archived by the new primary
    _archive_now(source)
    assert _archive_status(source, status["leader"])["line"].startswith("archiving ok")
    assert (source.fetch(first_primary) or {}).get("archive") is None  # a replica does not archive
    segments = _archived_segments(repo)
    for numbers in segments.values():
        assert numbers == list(range(numbers[0], numbers[-1] + 1))  # no gap within a timeline
    assert segments[2][0] <= segments[1][-1] + 1  # timeline 2 starts where timeline 1 ends
    assert list(repo.glob("archive/e2e/*/00000002.history"))  # the new primary archived its history file
    expected = _rows(source)
    assert expected == list(range(1, 151))

    restored_doc = yaml.safe_load(doc.read_text())
    restored_doc["metadata"]["name"] = "restored"
    del restored_doc["spec"]["backup"]
    source_spec = {"repository": {"volume": {"path": str(repo)}}, "clusterName": "e2e"}
    restored_doc["spec"]["bootstrap"] = {"fromBackup": source_spec}
    doc2 = base / "restored.yaml"
    doc2.write_text(yaml.safe_dump(restored_doc))
    restored = LocalCluster(base / "restored")
    began = time.monotonic()
    shown = subprocess.run([sys.executable, "-m", "pgkeel", "up", "-f", str(doc2), "--dir", str(restored.layout.root),
                            "--timeout", "120"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    print(f"\nup from the backup (restore, replay, promote, found, clone 2): {time.monotonic() - began:.1f} s")
    cluster = restored.cluster()
    record = json.loads(restore.record_file(restored.layout).read_text())
    print(f"restore {record['restore_seconds']} s, replay+promote {record['replay_seconds']} s")
    assert record["from_backup"]["backup"] == run["backup"]["label"]
    assert record["timeline"] > 2  # the source's timeline 2 (the switchover) was followed, then promoted
    first = cluster.member_names()[0]
    status = restored.status()
    assert status["leader"] == first  # the member with the restored data founded the cluster
    for member in status["members"]:
        assert member["timeline"] == record["timeline"], status
    assert _rows(restored) == expected
    assert not (restored.layout.node(first) / "data.restored").exists()  # recorded in the store: marker gone
    agent_log = (restored.layout.node(first) / "agent.log").read_text()
    assert "[bootstrap.restored]" in agent_log and "[bootstrap.initdb]" not in agent_log
    for other in cluster.member_names()[1:]:
        other_log = (restored.layout.node(other) / "agent.log").read_text()
        assert "[bootstrap.wait-restore]" in other_log or "[bootstrap.clone]" in other_log
        assert "[bootstrap.initdb]" not in other_log
        with psycopg.connect(restored.node_dsn(other), autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id").fetchall()] != expected:
                assert time.monotonic() < deadline, f"{other} did not replay the restored rows"
                time.sleep(0.2)
    _insert(restored, range(151, 152))  # writes are acknowledged (quorum mode: a standby confirms)
    assert _rows(restored) == [*expected, 151]
    again = subprocess.run([sys.executable, "-m", "pgkeel", "up", "--dir", str(restored.layout.root)],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "restoring" not in again.stdout + again.stderr  # never restored twice
    assert _rows(restored) == [*expected, 151]
