"""Room on the data volume, so a clone that cannot fit is refused before it fills the disk.

A pg_basebackup that hits ENOSPC deletes its partial copy and leaves the node with no data and
a volume still full of whatever filled it (e.g. the aside copy): the agent must compare first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The source's databases are only part of a clone: WAL streamed during the copy, config files,
# and filesystem overhead come on top. 10% + 64 MiB covers that for the sizes we run.
CLONE_HEADROOM_FRACTION = 0.10
CLONE_HEADROOM_BYTES = 64 * 1024 * 1024

# Readable by any role that may CONNECT to each database (the default for PUBLIC), i.e. by the
# replication role that pg_rewind already connects with; databases it may not connect to are
# skipped rather than failing the whole estimate (the figure is then a lower bound).
SOURCE_SIZE_SQL = """
SELECT coalesce(sum(CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END), 0)::bigint,
       count(*) FILTER (WHERE NOT has_database_privilege(oid, 'CONNECT'))::int
FROM pg_database
"""


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user may still write on the filesystem holding `path` (or its nearest
    existing parent: the data directory itself may be missing right after a move aside)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


@dataclass(frozen=True)
class CloneSpace:
    source_bytes: int  # what the source's databases occupy
    needed_bytes: int  # source plus headroom
    free_bytes: int
    skipped_databases: int  # databases the replication role may not connect to (not counted)

    @property
    def fits(self) -> bool:
        return self.free_bytes >= self.needed_bytes

    def explain(self) -> str:
        mib = 1024 * 1024
        verdict = "fits" if self.fits else "does NOT fit"
        extra = f"; {self.skipped_databases} database(s) not counted" if self.skipped_databases else ""
        return (
            f"clone {verdict}: source about {self.source_bytes // mib} MiB, needs {self.needed_bytes // mib} MiB "
            f"with headroom, {self.free_bytes // mib} MiB free{extra}"
        )


def clone_space(source_bytes: int, free: int, skipped: int = 0) -> CloneSpace:
    needed = int(source_bytes * (1 + CLONE_HEADROOM_FRACTION)) + CLONE_HEADROOM_BYTES
    return CloneSpace(source_bytes, needed, free, skipped)
