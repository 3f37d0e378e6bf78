"""pg_rewind: the command line per PostgreSQL version, and what its output means.

The agent must not treat every pg_rewind failure alike: a refused connection is worth a retry,
while only a real divergence (no common ancestor, WAL gone) justifies a re-clone, and a rewind
that died half-way has left a data directory that must never be started. This module turns
pg_rewind's exit code and messages into one of those outcomes; it runs nothing itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

# Written beside PGDATA (inside, pg_rewind would delete it as a file the source lacks) before
# pg_rewind runs, and removed once it has exited without touching the target, or finished.
# Still there = pg_rewind may have copied part of the source over the target: PostgreSQL's docs
# say such a directory cannot be recovered, so it must not be started or rewound again (a second
# run would read target WAL that the first one already overwrote).
REWIND_MARKER_SUFFIX = ".rewind-in-progress"


def rewind_marker(datadir: Path) -> Path:
    return datadir.with_name(datadir.name + REWIND_MARKER_SUFFIX)


class RewindOutcome(StrEnum):
    REWOUND = "rewound"  # blocks were copied; start as a standby of the source
    NOT_NEEDED = "not_needed"  # same timeline / target behind the fork point: nothing copied
    UNREACHABLE = "unreachable"  # connection, auth, TLS or "source not ready": retry later
    DIVERGED_BEYOND_REWIND = "diverged_beyond_rewind"  # no common ancestor / WAL gone: re-clone
    INTERRUPTED = "interrupted"  # failed after it began writing the target: re-clone, never start
    FAILED = "failed"  # anything else (e.g. no checksums/wal_log_hints, foreign system): alarm

    @property
    def retryable(self) -> bool:
        return self is RewindOutcome.UNREACHABLE

    @property
    def needs_reclone(self) -> bool:
        """Only these justify moving the data directory aside and cloning."""
        return self in (RewindOutcome.DIVERGED_BEYOND_REWIND, RewindOutcome.INTERRUPTED)


@dataclass(frozen=True)
class RewindResult:
    outcome: RewindOutcome
    reason: str  # the line that decided the outcome (or a short explanation)
    output: str  # pg_rewind's full stdout+stderr
    returncode: int | None  # None: it did not run to an exit (timeout) or was not run
    copy_mb: int | None = None  # "need to copy N MB" (progress output)
    source_mb: int | None = None  # "(total source directory size is N MB)"

    @property
    def ok(self) -> bool:
        return self.outcome in (RewindOutcome.REWOUND, RewindOutcome.NOT_NEEDED)


# Checked in this order; each pattern is matched case-insensitively against the whole output.
_DIVERGED = (
    r"could not open file \"[^\"]*pg_wal/",  # target WAL missing: the most precise reason, first
    r"could not find common ancestor",
    r"could not find previous WAL record",
    r"could not read WAL record",
    r"could not restore file",
    r"requested WAL segment \S+ has already been removed",
)
_UNREACHABLE = (
    r"connection to server .* failed",  # libpq 14+
    r"could not connect to server",  # libpq 13
    r"connection refused",
    r"timeout expired",
    r"could not translate host name",
    r"no route to host",
    r"network is unreachable",
    r"server closed the connection unexpectedly",
    r"terminating connection due to administrator command",
    r"password authentication failed",
    r"no password supplied",
    r"no pg_hba\.conf entry",
    r"pg_hba\.conf rejects",
    r"SSL error",
    r"SSL SYSCALL error",
    r"certificate",
    r"the database system is (starting up|shutting down|in recovery mode|not (yet )?accepting connections)",
    r"too many clients",
    r"remaining connection slots are reserved",
    r"source server must not be in recovery mode",  # pg_rewind 13 on a standby not yet promoted
)
_NOT_NEEDED = re.compile(r"no rewind required", re.IGNORECASE)
_COPY = re.compile(r"need to copy (\d+) MB \(total source directory size is (\d+) MB\)")
_MAJOR = re.compile(r"\(PostgreSQL\)\s+(\d+)")
_LEGACY_MIN = 13  # --no-ensure-shutdown appeared in 13; the document accepts 13-17


def _first(patterns: tuple[str, ...], output: str) -> str | None:
    for pattern in patterns:
        m = re.search(pattern, output, re.IGNORECASE)
        if m:
            start = output.rfind("\n", 0, m.start()) + 1
            end = output.find("\n", m.end())
            return output[start : end if end >= 0 else len(output)].strip()
    return None


def began_writing(output: str) -> bool:
    """pg_rewind -P prints "need to copy … MB" just before it writes to the target."""
    return _COPY.search(output) is not None


def classify(output: str, returncode: int) -> RewindResult:
    """The outcome of one finished pg_rewind run (run with -P so the write phase is visible)."""
    m = _COPY.search(output)
    sizes = {"copy_mb": int(m.group(1)), "source_mb": int(m.group(2))} if m else {}
    if returncode == 0:
        if _NOT_NEEDED.search(output):
            return RewindResult(RewindOutcome.NOT_NEEDED, "no rewind required", output, returncode, **sizes)
        return RewindResult(RewindOutcome.REWOUND, "done", output, returncode, **sizes)
    if began_writing(output):
        reason = _first((r"error: .*", r"fatal: .*"), output) or "pg_rewind failed while writing the target"
        return RewindResult(RewindOutcome.INTERRUPTED, reason, output, returncode, **sizes)
    for outcome, patterns in (
        (RewindOutcome.DIVERGED_BEYOND_REWIND, _DIVERGED),
        (RewindOutcome.UNREACHABLE, _UNREACHABLE),
    ):
        line = _first(patterns, output)
        if line is not None:
            return RewindResult(outcome, line, output, returncode, **sizes)
    tail = output.strip().splitlines()[-1] if output.strip() else f"exit code {returncode}"
    return RewindResult(RewindOutcome.FAILED, tail, output, returncode, **sizes)


def tool_major(version_output: str) -> int:
    """'pg_rewind (PostgreSQL) 15.20 (Debian …)' -> 15."""
    m = _MAJOR.search(version_output)
    if m is None:
        raise ValueError(f"cannot read a PostgreSQL version from {version_output!r}")
    return int(m.group(1))


def rewind_argv(tool: str, datadir: Path, source: str, config_file: Path, major: int) -> list[str]:
    """pg_rewind's command line for this major version.

    pg_rewind starts postgres itself in single-user mode when the target was not shut down
    cleanly (crash recovery first). That postgres must read our shared config file, which lives
    outside PGDATA: from 15 on `--config-file` says so. 13 and 14 have no such option and would
    run postgres with PGDATA's own (initdb default, or the source's) postgresql.conf, so there
    `Instance.try_rewind` runs that single-user recovery itself, with `-c config_file=` exactly
    as pg_rewind 15 does, and passes `--no-ensure-shutdown` (13+) so pg_rewind never starts
    postgres. Copying our file into PGDATA instead would not work: pg_rewind overwrites
    PGDATA's postgresql.conf with the source's, and a crash half-way would leave ours there.
    We never pass -c/--restore-target-wal, the other place where pg_rewind runs postgres.
    """
    if major < _LEGACY_MIN:
        raise ValueError(f"pg_rewind {major} is not supported (13 or later)")
    argv = [tool, "-D", str(datadir), f"--source-server={source}", "--progress"]
    if major >= 15:
        argv.append(f"--config-file={config_file}")
    else:
        argv.append("--no-ensure-shutdown")
    return argv


def single_user_recovery_argv(postgres: str, datadir: Path, config_file: Path) -> list[str]:
    """What pg_rewind 15's ensureCleanShutdown runs (stdin must be empty): crash recovery, then a clean stop."""
    return [postgres, "--single", "-F", "-D", str(datadir), "-c", f"config_file={config_file}", "template1"]
