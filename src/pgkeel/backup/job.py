"""What an agent needs to run scheduled base backups: the schedules, where pgBackRest's config is,
and how to reach each member's postgres on this machine (for a backup copied from a standby).

Written by `pgkeel up` for local clusters, where every member's data directory is on the machine the
leader's agent runs on; without hosts for the others the leader backs up from its own primary.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pgkeel.backup.engine import PgHost


class BackupHost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datadir: Path
    port: int
    socket_dir: Path

    def pg_host(self, user: str) -> PgHost:
        return PgHost(self.datadir, self.port, self.socket_dir, user)


class BackupJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config_file: Path = Field(description="The cluster's pgbackrest.conf (0600, owned by postgres).")
    stanza: str
    full: str | None = Field(default=None, description="Cron schedule of full backups (UTC); null: none.")
    diff: str | None = Field(default=None, description="Cron schedule of differential backups (UTC); null: none.")
    drill: str | None = Field(default=None, description="Cron schedule of restore drills (UTC); null: on demand.")
    drill_scratch: Path | None = Field(default=None, description="Where a drill restores its throwaway copy.")
    bindir: Path | None = Field(default=None, description="PostgreSQL binaries a drill starts its copy with.")
    from_standby: bool = True
    hosts: dict[str, BackupHost] = Field(default_factory=dict, description="Member → its postgres on this machine.")
