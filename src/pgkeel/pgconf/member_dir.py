"""Where one member's PostgreSQL files stand: one directory with PGDATA, its certificate, its socket
directory and its server log side by side, wherever the member runs (local.layout's nodes/<name>/,
node.config's /var/lib/pgkeel/<cluster>/).

Why side by side: the rendered postgresql.conf names its certificate `../tls/server.crt`, relative
to PGDATA (pgconf.policy), so tls/ must stand beside data/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MemberDir:
    """One member's directory."""

    base: Path

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def tls(self) -> Path:
        return self.base / "tls"  # postgresql.conf names ../tls/server.crt, relative to PGDATA

    @property
    def run(self) -> Path:
        return self.base / "run"  # the unix socket directory

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"
