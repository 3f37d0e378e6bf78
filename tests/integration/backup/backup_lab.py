"""A real PostgreSQL 15 primary archiving with pgBackRest into a repository (posix in a temp dir by default).

Shared by the test_* modules of this folder (imported by name, like instance_nodes; conftest.py makes
the `lab` fixture). archive_command/restore_command are the ones pgconf renders for the document.
"""

from __future__ import annotations

from typing import Any

from instance_nodes import Nodes, chown_pg

from pgkeel.backup import ConfPaths, PgBackRest, PgHost, render_conf
from pgkeel.document import parse_cluster
from pgkeel.instance import Instance
from pgkeel.pgconf.policy import archive_settings

STANZA = "bk"


class Lab:
    def __init__(self, nodes: Nodes, backup: dict[str, Any] | None = None) -> None:
        """`backup`: the document's spec.backup; default a volume repository in the root, keeping 2 fulls."""
        self.nodes = nodes
        root = nodes.root
        self.repo = root / "repo"
        self.etc = root / "etc"
        for d in (self.repo, self.etc, root / "log", root / "lock"):
            d.mkdir()
            chown_pg(d)
        cluster = parse_cluster({
            "apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": STANZA},
            "spec": {"backup": backup or {"repositories": [{"volume": {"path": str(self.repo)}}],
                                          "retention": {"full": 2}}},
        })
        assert cluster.spec.backup is not None
        self.conf = conf = self.etc / "pgbackrest.conf"
        conf.write_text(render_conf(STANZA, cluster.spec.backup, ConfPaths(root / "log", root / "lock"),
                                   cluster.spec.archive_backlog_bytes))
        conf.chmod(0o600)
        chown_pg(conf)
        self.engine = PgBackRest(conf, STANZA)
        self.archive = {s.name: s.value for s in archive_settings(cluster, str(self.etc))}

    def gucs(self) -> dict[str, str]:
        quoted = {k: v if k == "archive_mode" else "'" + v.replace("'", "''") + "'" for k, v in self.archive.items()}
        return {**quoted, "archive_timeout": "0"}

    def host(self, inst: Instance) -> PgHost:
        c = inst.config
        return PgHost(c.datadir, c.port, c.socket_dir)

    def archived_through(self, inst: Instance) -> str:
        """Switch WAL and wait until that segment is archived; its name."""
        (row,) = inst.query("SELECT pg_walfile_name(pg_switch_wal())")
        segment = str(row[0])
        self.nodes.wait_for(lambda: (inst.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] or "")
                            >= segment, timeout=60)
        return segment
