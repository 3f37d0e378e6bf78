"""Start a postgres on restored data and wait until it has replayed and promoted: one recipe for restores and drills.

Both `pgkeel up` with fromBackup (local/restore.py) and restore drills (backup/drill.py) restore into a
directory of their own and need the same thing next: the server up, recovery over, the new timeline
open. A server that exits or does not finish in time is stopped (immediate) before this raises, so no
caller is left with a half-recovered postgres running.
"""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import psycopg

from pgkeel.instance import Instance
from pgkeel.instance.files import atomic_write


class ReplayError(RuntimeError):
    """Recovery did not finish: postgres refused to start, exited, or was still recovering at the deadline."""


def write_socket_auth(hba: Path, ident: Path, superuser: str, map_name: str) -> None:
    """hba and ident files for a postgres reached over its socket only, as `superuser`, by us (root, or the user
    running pgkeel) and by the postgres OS user (its own tools)."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    atomic_write(hba, f"local all {superuser} peer map={map_name}\n", mode=0o644)
    atomic_write(ident, f"{map_name} {user} {superuser}\n{map_name} postgres {superuser}\n", mode=0o644)


def replay_until_promoted(inst: Instance, timeout: float) -> tuple[str, int]:
    """Start `inst`, wait until it left recovery; (its WAL position, timeline)."""
    try:
        inst.start(timeout=timeout)
    except (RuntimeError, TimeoutError) as exc:
        inst.stop("immediate")
        raise ReplayError(f"recovery did not reach its target: {exc}") from None
    deadline = time.monotonic() + timeout
    while True:
        if not inst.is_running():
            raise ReplayError(f"postgres exited during recovery; see {inst.config.log_file}")
        try:
            in_recovery = inst.query("SELECT pg_is_in_recovery()")[0][0]
        except psycopg.Error:
            in_recovery = True  # still starting up: ask again
        if not in_recovery:
            return str(inst.query("SELECT pg_current_wal_lsn()::text")[0][0]), inst.status().timeline
        if time.monotonic() > deadline:
            inst.stop("immediate")
            raise ReplayError(f"recovery did not finish within {timeout:g}s; see {inst.config.log_file}")
        time.sleep(0.2)
