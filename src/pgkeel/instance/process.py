"""Running PostgreSQL's own tools: as the `postgres` OS user when we are root, secrets via env/files.

PostgreSQL refuses to run as root, and every password must travel through a file or the
environment (never argv, where `ps` shows it). This module is the one place that spawns
PostgreSQL binaries, so both rules are enforced once.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

POSTGRES_OS_USER = "postgres"


class CommandError(RuntimeError):
    """A PostgreSQL tool exited non-zero; the message carries its stderr tail."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        tail = "\n".join(output.strip().splitlines()[-8:])
        super().__init__(f"{Path(argv[0]).name} exited with {returncode}: {tail}")
        self.returncode = returncode
        self.output = output


class UserKwargs(TypedDict, total=False):
    """subprocess keyword arguments that switch the child to another OS user."""

    user: int
    group: int
    extra_groups: list[int]


@dataclass(frozen=True)
class RunAs:
    """Who PostgreSQL processes run as: None = the current user (already non-root)."""

    user: str | None

    @classmethod
    def for_current_process(cls, user: str = POSTGRES_OS_USER) -> RunAs:
        return cls(user if os.geteuid() == 0 else None)

    def kwargs(self) -> UserKwargs:
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def drop_privileges(user: str = POSTGRES_OS_USER) -> None:
    """Become `user` for good when started as root (the agent does this before anything else)."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    os.environ["HOME"] = entry.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = user


def pgbackrest_env() -> dict[str, str]:
    """pgBackRest's options from this process's environment (PGBACKREST_*, e.g. the S3 keys a Kubernetes Secret
    gives the container): passed on to postgres (archive_command) and the tools, unlike the other PG* variables."""
    return {k: v for k, v in os.environ.items() if k.startswith("PGBACKREST_")}


def run(
    argv: Sequence[str],
    *,
    run_as: RunAs,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cwd: str | Path | None = None,
    stdin: str | None = None,
) -> str:
    """Run a tool to completion; return stdout+stderr, raise CommandError on failure."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    full_env.update(pgbackrest_env())
    full_env.update(env or {})
    full_env.setdefault("LC_ALL", "C.UTF-8")
    proc = subprocess.run(
        list(argv),
        env=full_env,
        cwd=str(cwd) if cwd else "/",
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **run_as.kwargs(),
    )
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        raise CommandError(list(argv), proc.returncode, output)
    return output
