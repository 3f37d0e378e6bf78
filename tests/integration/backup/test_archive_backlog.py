"""A failing archive on a real PostgreSQL 15 + pgBackRest: the backlog stays bounded and says so.

The repository is made unreachable the way a lost mount is (mode 000: postgres can no longer enter it),
WAL is written segment by segment, and the agent's ArchiveWatch samples the primary as it does in the
loop. stopArchiving: pgBackRest drops past maxBacklog, the watch reports the gap until a full backup
after it. stopWrites: the primary refuses writes at the bound and takes them again once it drained.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import psycopg
import pytest
from instance_nodes import Nodes, chown_pg, make_nodes, needs_pg15

from pgkeel.backup import ConfPaths, PgBackRest, PgHost, render_conf
from pgkeel.backup.archive_watch import ArchivePolicy, ArchiveWatch, full_backup_start, read_sample
from pgkeel.dcs import open_dcs
from pgkeel.document import PostgresCluster, parse_cluster
from pgkeel.ha.backup_record import StoredGap
from pgkeel.instance import Instance
from pgkeel.pgconf.policy import archive_settings

pytestmark = [
    pytest.mark.integration,
    needs_pg15,
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest not installed"),
]
STANZA = "bk"
SEG = 16 * 2**20
BOUND = 4 * SEG


class Archive:
    def __init__(self, nodes: Nodes, on_full: str) -> None:
        self.nodes = nodes
        self.on_full = on_full
        root = nodes.root
        self.repo, self.etc = root / "repo", root / "etc"
        for d in (self.repo, self.etc, root / "log", root / "lock"):
            d.mkdir()
            chown_pg(d)
        self.cluster: PostgresCluster = parse_cluster({
            "apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": STANZA},
            "spec": {"storage": {"size": "1Gi"}, "backup": {
                "repositories": [{"volume": {"path": str(self.repo)}}],
                "archive": {"maxBacklog": "64Mi", "onBacklogFull": on_full}}},
        })
        backup = self.cluster.spec.backup
        assert backup is not None and self.cluster.spec.archive_backlog_bytes == BOUND
        conf = self.etc / "pgbackrest.conf"
        conf.write_text(render_conf(STANZA, backup, ConfPaths(root / "log", root / "lock"), BOUND))
        conf.chmod(0o600)
        chown_pg(conf)
        self.engine = PgBackRest(conf, STANZA)
        settings = {s.name: s.value for s in archive_settings(self.cluster, str(self.etc))}
        gucs = {k: v if k == "archive_mode" else "'" + v.replace("'", "''") + "'" for k, v in settings.items()}
        self.primary = nodes.primary(**{**gucs, "archive_timeout": "0"}, max_wal_size="1GB")
        c = self.primary.config
        self.engine.ensure_stanza(PgHost(c.datadir, c.port, c.socket_dir))
        self.store = open_dcs(f"sqlite://{root / 'store.db'}", STANZA)
        self.watch = self.new_watch()
        self.primary.query("CREATE TABLE t (x text)")

    def new_watch(self) -> ArchiveWatch:
        """The agent's watch, as a (re)started agent makes it: its gap memory is the store's backups record."""
        return ArchiveWatch(self.primary, ArchivePolicy(BOUND, self.on_full),  # type: ignore[arg-type]
                            lambda: full_backup_start(self.engine), every=0.0, backup_every=0.0,
                            gap_memory=StoredGap(self.store))

    def host(self) -> PgHost:
        c = self.primary.config
        return PgHost(c.datadir, c.port, c.socket_dir)

    def unreachable(self, lost: bool) -> None:
        self.repo.chmod(0o000 if lost else 0o750)

    def write_segment(self) -> None:
        """About one segment of WAL, then a switch so it waits for the archive."""
        with psycopg.connect(host=str(self.primary.config.socket_dir), port=self.primary.config.port,
                             user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute("INSERT INTO t SELECT repeat('x', 1000) FROM generate_series(1, 12000)")
            conn.execute("SELECT pg_switch_wal()")


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


def _backlog(inst: Instance) -> int:
    return read_sample(inst).backlog_bytes


def test_stop_archiving_bounds_the_backlog_reports_the_gap_and_a_full_backup_closes_it(nodes: Nodes) -> None:
    lab = Archive(nodes, "stopArchiving")
    lab.watch.run()
    assert lab.watch.status is not None and lab.watch.status.line.startswith("archiving ok")
    lab.unreachable(True)
    peak = 0
    for _ in range(12):  # three times the bound
        lab.write_segment()
        nodes.wait_for(lambda: read_sample(lab.primary).last_failed_age is not None, timeout=30)
        lab.watch.run()
        peak = max(peak, _backlog(lab.primary))
    # Past the bound only by what is written before the archiver's next attempt drops it (three tries a second
    # apart, then its own wait): how far depends on the machine's load, so it is printed, not asserted. What
    # must hold: once the archiver runs again the backlog is back within the bound (12 segments were written).
    print(f"backlog peak {peak // SEG} segments, bound {BOUND // SEG}")
    nodes.wait_for(lambda: _backlog(lab.primary) <= BOUND, timeout=90)
    nodes.wait_for(lambda: (lab.watch.run(), lab.watch.status and lab.watch.status.gap_since)[1], timeout=60)
    status = lab.watch.status
    assert status is not None and "ARCHIVING STOPPED" in status.line  # failing or not: a drop counts as archived
    assert lab.primary.query("SELECT count(*) FROM t")[0][0] == 12 * 12000  # writes never stopped
    lab.unreachable(False)
    lab.write_segment()
    nodes.wait_for(lambda: _backlog(lab.primary) == 0, timeout=60)
    restarted = lab.new_watch()  # an agent restart (or the next primary): nothing is dropping WAL any more
    restarted.run()
    assert restarted.status is not None and restarted.status.gap_since == status.gap_since  # from the store
    assert "ARCHIVING STOPPED" in restarted.status.line  # drained is not healed
    lab.engine.backup("full", lab.host(), None)
    # the repository is asked off the loop (pgkeel.backup.archive_watch._in_background): healed a sample later
    nodes.wait_for(lambda: (restarted.run(), restarted.status and restarted.status.gap_since is None)[1], timeout=30)
    assert restarted.status is not None and restarted.status.line.startswith("archiving ok")
    assert StoredGap(lab.store).load() is None  # healed in the store too: the next agent reports no gap
    again = lab.new_watch()
    again.run()
    assert again.status is not None and again.status.line.startswith("archiving ok")


def test_stop_writes_refuses_writes_at_the_bound_and_gives_them_back_once_drained(nodes: Nodes) -> None:
    lab = Archive(nodes, "stopWrites")
    lab.unreachable(True)
    for _ in range(6):
        try:
            lab.write_segment()
        except psycopg.errors.ReadOnlySqlTransaction:
            break
        nodes.wait_for(lambda: read_sample(lab.primary).last_failed_age is not None, timeout=30)
        lab.watch.run()
    status = lab.watch.status
    assert status is not None and status.writes_stopped and status.line.startswith("WRITES STOPPED")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        lab.write_segment()
    assert _backlog(lab.primary) <= BOUND + SEG
    lab.unreachable(False)
    nodes.wait_for(lambda: _backlog(lab.primary) <= BOUND // 2, timeout=90)
    lab.watch.run()
    assert lab.watch.status is not None and not lab.watch.status.writes_stopped
    nodes.wait_for(lambda: lab.primary.query("SHOW default_transaction_read_only")[0][0] == "off", timeout=10)
    lab.write_segment()
    state = lab.engine.info()
    assert state.wal_max is not None  # nothing was dropped: the archive holds the segments written meanwhile


def test_a_repository_that_does_not_answer_never_holds_the_agent_loop(nodes: Nodes) -> None:
    """An S3 endpoint that hangs (pgBackRest waits minutes) must not stall the loop that renews the lease:
    the stanza is created off the loop, and the watch keeps sampling meanwhile."""
    lab = Archive(nodes, "stopArchiving")
    answer = threading.Event()
    asked = threading.Event()

    def hanging_stanza() -> bool:
        asked.set()
        answer.wait(60)  # as long as the repository takes
        return True

    watch = ArchiveWatch(lab.primary, ArchivePolicy(BOUND, "stopArchiving"), lambda: None, every=0.0,
                         backup_every=0.0, ensure_stanza=hanging_stanza)
    try:
        runs = threading.Thread(target=lambda: [watch.run() for _ in range(3)], daemon=True)
        runs.start()
        runs.join(timeout=20)
        assert not runs.is_alive(), "ArchiveWatch.run waited for the repository"
        assert asked.is_set() and watch.status is not None  # asked, and sampled while it hangs
    finally:
        answer.set()
