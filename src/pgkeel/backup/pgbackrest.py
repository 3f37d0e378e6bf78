"""The pgBackRest engine: each BackupEngine operation as one `pgbackrest` command, run as postgres.

Every command reads the cluster's rendered config (`--config`), so secrets stay in that 0600 file;
what differs per node and per run (pg1-path, ports, sockets) is given as options, which are not
secret. The tool runs through instance.process.run, the one place that spawns as the postgres user.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from pgkeel.backup.engine import BackupError, BackupSet, BackupType, PgHost, RepositoryState, Target, from_epoch
from pgkeel.instance.process import CommandError, RunAs, run

PGBACKREST = "pgbackrest"
BACKUP_TIMEOUT = 6 * 3600.0
_INFO_REPO_ERROR = 99  # a repository's status code in `info --output=json` when it could not be read
_INFO_MESSAGE_CHARS = 300  # its message carries the request's headers (redacted) and the response: the start says why
# stanza-create on an existing, matching stanza says so and exits 0; these say it exists already.
_STANZA_EXISTS = ("already exists and is valid",)


def _pg_options(index: int, host: PgHost) -> list[str]:
    key = f"--pg{index}"
    return [f"{key}-path={host.datadir}", f"{key}-port={host.port}", f"{key}-socket-path={host.socket_dir}",
            f"{key}-user={host.user}"]


def _backup_set(raw: dict[str, Any]) -> BackupSet:
    return BackupSet(
        label=raw["label"],
        type=raw["type"],
        started=from_epoch(int(raw["timestamp"]["start"])),
        stopped=from_epoch(int(raw["timestamp"]["stop"])),
        size=int(raw["info"]["size"]),
        repo_size=int(raw["info"]["repository"]["size"]),
        wal_start=raw["archive"]["start"],
        wal_stop=raw["archive"]["stop"],
        lsn_start=raw["lsn"]["start"],
        lsn_stop=raw["lsn"]["stop"],
        prior=raw.get("prior"),
    )


def parse_info(text: str, stanza: str) -> RepositoryState:
    """`pgbackrest info --output=json` for one stanza, as a RepositoryState (backups oldest first)."""
    entries = json.loads(text)
    entry = next((e for e in entries if e.get("name") == stanza), None)
    if entry is None:
        return RepositoryState(stanza, "missing stanza", (), None, None, None)
    unreadable = [r for r in entry.get("repo", []) if r.get("status", {}).get("code") == _INFO_REPO_ERROR]
    if unreadable:  # info exits 0 then: without this an unreachable repository would read as "no backups"
        message = " ".join(str(unreadable[0]["status"].get("message", "")).split())
        meaning = explain(message)
        raise BackupError(f"pgbackrest info: repo{unreadable[0].get('key', 1)} could not be read: "
                          + (f"{meaning}: " if meaning else "") + message[:_INFO_MESSAGE_CHARS])
    backups = tuple(sorted((_backup_set(b) for b in entry.get("backup", [])), key=lambda b: b.stopped))
    archives = entry.get("archive", [])
    mins = [a["min"] for a in archives if a.get("min")]
    maxes = [a["max"] for a in archives if a.get("max")]
    dbs = entry.get("db", [])
    return RepositoryState(
        stanza=stanza,
        status=str(entry.get("status", {}).get("message", "unknown")),
        backups=backups,
        wal_min=min(mins) if mins else None,
        wal_max=max(maxes) if maxes else None,
        system_identifier=str(dbs[-1]["system-id"]) if dbs else None,
    )


def target_options(target: Target) -> list[str]:
    """pgbackrest restore options for a target; every target but latest promotes when reached."""
    if target.kind == "latest":
        return ["--type=default"]
    return [f"--type={target.kind}", f"--target={target.value}", "--target-action=promote"]


class PgBackRest:
    """BackupEngine over the `pgbackrest` command for one stanza and config file."""

    def __init__(self, config: Path, stanza: str, run_as: RunAs | None = None, binary: str = PGBACKREST) -> None:
        self.config = config
        self.stanza = stanza
        self.run_as = run_as or RunAs.for_current_process()
        self.binary = binary

    def _run(self, command: str, *options: str, timeout: float = 300.0) -> str:
        argv = [self.binary, f"--config={self.config}", f"--stanza={self.stanza}", *options, command]
        try:
            return run(argv, run_as=self.run_as, timeout=timeout)
        except CommandError as exc:
            raise _failure(command, exc.returncode, exc.output) from None
        except subprocess.TimeoutExpired:
            raise _timed_out(command, timeout) from None

    def archive_push(self, wal_path: Path) -> None:
        self._run("archive-push", str(wal_path))

    def archive_get(self, wal_name: str, destination: Path, datadir: Path) -> bool:
        """True when the segment was in the archive (pgBackRest exits 1 when it is not); it checks the
        segment belongs to `datadir`'s cluster (pg_control)."""
        argv = [self.binary, f"--config={self.config}", f"--stanza={self.stanza}",
                f"--pg1-path={datadir}", "archive-get", wal_name, str(destination)]
        try:
            run(argv, run_as=self.run_as, timeout=300.0)
        except CommandError as exc:
            if exc.returncode == 1:
                return False
            raise _failure("archive-get", exc.returncode, exc.output) from None
        except subprocess.TimeoutExpired:
            raise _timed_out("archive-get", 300.0) from None
        return True

    def ensure_stanza(self, primary: PgHost) -> bool:
        """Create the stanza unless it exists (pgBackRest checks that it matches this cluster); True if created."""
        state = self.info()
        if state.system_identifier is not None:
            return False
        output = self._run("stanza-create", *_pg_options(1, primary))
        return not any(text in output for text in _STANZA_EXISTS)

    def backup(self, kind: BackupType, primary: PgHost, standby: PgHost | None) -> BackupSet:
        """One backup; with a standby, files are copied from it (backup-standby) and only the start/stop
        calls and the archive go to the primary. Returns the new set."""
        before = {b.label for b in self.info().backups}
        options = [f"--type={kind}", *_pg_options(1, primary)]
        if standby is not None:
            options += [*_pg_options(2, standby), "--backup-standby"]
        self._run("backup", *options, timeout=BACKUP_TIMEOUT)
        made = [b for b in self.info().backups if b.label not in before]
        if not made:
            raise BackupError("pgbackrest backup exited 0 but no new backup is listed by pgbackrest info")
        return made[-1]

    def restore(self, datadir: Path, target: Target, backup_set: str | None, archive_off: bool = False) -> None:
        """Restore into `datadir` (empty, or an earlier restore's: --delta rewrites only what differs).
        archive_off writes archive_mode=off into the copy, so its promotion never archives into the repository."""
        options = [f"--pg1-path={datadir}", *target_options(target)]
        if archive_off:
            options.append("--archive-mode=off")
        if backup_set is not None:
            options.append(f"--set={backup_set}")
        if any(datadir.iterdir()):
            options += ["--delta", "--force"]
        self._run("restore", *options, timeout=BACKUP_TIMEOUT)

    def expire(self) -> None:
        self._run("expire")

    def verify(self) -> str:
        return self._run("verify", timeout=BACKUP_TIMEOUT)

    def info(self) -> RepositoryState:
        return parse_info(self._run("info", "--output=json", timeout=60.0), self.stanza)


def _reason(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "HINT" in line]
    return " ".join(errors[-3:] or lines[-3:]) or "(no output)"


# What a repository failure means, for the operator: first match wins. pgBackRest's own line follows it.
_EXPLANATIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"unable to verify certificate|in certificate common name|certificate verify failed|\[095\]"),
     "TLS verification of the repository endpoint failed: give the CA that signed its certificate as caFile, "
     "and an endpoint name the certificate names"),
    (re.compile(r"failed with 403|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied"),
     "the repository refused the credentials (authorization failed): check credentialsFile's accessKeyId and "
     "secretAccessKey"),
    (re.compile(r"unable to connect to|unable to get address for|timeout after|\[049\]|\[039\].*failed with 5\d\d"),
     "the repository could not be reached"),
)


def explain(output: str) -> str | None:
    """The operator's meaning of a pgBackRest failure (TLS, credentials, unreachable), or None."""
    return next((meaning for pattern, meaning in _EXPLANATIONS if pattern.search(output)), None)


def _failure(command: str, returncode: int, output: str) -> BackupError:
    meaning = explain(output)
    return BackupError(
        f"pgbackrest {command} failed (exit {returncode}): " + (f"{meaning}: " if meaning else "") + _reason(output)
    )


def _timed_out(command: str, timeout: float) -> BackupError:
    return BackupError(f"pgbackrest {command} did not finish within {timeout:.0f} s: the repository could not be "
                       "reached in time (or the operation is larger than its timeout)")
