"""pg_rewind output -> outcome, on output captured from real runs (PostgreSQL 15.20, see
tests/integration/instance/test_instance_rewind.py with PGKEEL_CAPTURE_REWIND) plus the libpq
and server messages of the other "not now" cases, and the command line per major version."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgkeel.instance.rewind import (
    RewindOutcome,
    classify,
    rewind_argv,
    single_user_recovery_argv,
    tool_major,
)

Out = RewindOutcome

REWOUND = """pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/40000D8 on timeline 1
pg_rewind: rewinding from last common checkpoint at 0/4000060 on timeline 1
pg_rewind: reading source file list
pg_rewind: reading target file list
pg_rewind: reading WAL in target
pg_rewind: need to copy 67 MB (total source directory size is 86 MB)
    68718/68718 kB (100%) copied
pg_rewind: creating backup label and updating control file
pg_rewind: syncing target data directory
pg_rewind: Done!
"""
NOT_NEEDED = """pg_rewind: connected to server
pg_rewind: source and target cluster are on the same timeline
pg_rewind: no rewind required
"""
REFUSED = """pg_rewind: error: connection to server at "127.0.0.1", port 40547 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?
"""
AUTH = (
    'pg_rewind: error: connection to server at "127.0.0.1", port 42719 failed: '
    'FATAL:  password authentication failed for user "repl"\n'
    'password retrieved from file "/tmp/pgkeel-inst-9_cbgguq/secrets/pgpass"\n'
)
WAL_GONE = """pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/4000188 on timeline 1
pg_rewind: error: could not open file "/tmp/x/a/data/pg_wal/000000010000000000000004": No such file or directory
pg_rewind: error: could not find previous WAL record at 0/4000188
"""
FOREIGN = """pg_rewind: connected to server
pg_rewind: error: source and target clusters are from different systems
"""

# Captured from real runs: the cases the integration tests produce.
CAPTURED = [
    (REWOUND, 0, Out.REWOUND),
    (NOT_NEEDED, 0, Out.NOT_NEEDED),
    (REFUSED, 1, Out.UNREACHABLE),
    (AUTH, 1, Out.UNREACHABLE),
    (WAL_GONE, 1, Out.DIVERGED_BEYOND_REWIND),
    (FOREIGN, 1, Out.FAILED),
]

# Exact message texts of pg_rewind 13-17, libpq 13-17 and the server, in pg_rewind's framing.
E = "pg_rewind: error: "
C = E + 'connection to server at "10.0.0.5", port 5432 failed: '
MESSAGES = [
    (C + "timeout expired", Out.UNREACHABLE),
    (C + "FATAL:  the database system is starting up", Out.UNREACHABLE),
    (C + "FATAL:  the database system is shutting down", Out.UNREACHABLE),
    (C + "FATAL:  the database system is in recovery mode", Out.UNREACHABLE),
    (C + "FATAL:  the database system is not yet accepting connections", Out.UNREACHABLE),
    (C + "FATAL:  sorry, too many clients already", Out.UNREACHABLE),
    (C + "FATAL:  remaining connection slots are reserved for non-replication superuser connections", Out.UNREACHABLE),
    (C + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "repl", database "postgres"', Out.UNREACHABLE),
    (C + 'server certificate for "db-0" does not match host name "10.0.0.5"', Out.UNREACHABLE),
    (C + "SSL error: certificate verify failed", Out.UNREACHABLE),
    (C + "fe_sendauth: no password supplied", Out.UNREACHABLE),
    (E + 'could not translate host name "db-1.db" to address: Name or service not known', Out.UNREACHABLE),
    (
        E + 'could not connect to server: Connection refused\n\tIs the server running on host "db-1" (10.0.0.5) '
        "and accepting\n\tTCP/IP connections on port 5432?",
        Out.UNREACHABLE,
    ),  # libpq 13's wording
    (E + "source server must not be in recovery mode", Out.UNREACHABLE),
    (
        "pg_rewind: connected to server\n" + E + "error running query (SELECT path, size, isdir, pg_tablespace_location"
        ") in source server: server closed the connection unexpectedly",
        Out.UNREACHABLE,
    ),  # lost before anything was written: safe to retry
    (E + "could not find common ancestor of the source and target cluster's timelines", Out.DIVERGED_BEYOND_REWIND),
    (E + "could not read WAL record at 0/3000060: invalid record length at 0/3000060", Out.DIVERGED_BEYOND_REWIND),
    (E + 'could not restore file "000000010000000000000003" from archive', Out.DIVERGED_BEYOND_REWIND),
    (E + 'target server needs to use either data checksums or "wal_log_hints = on"', Out.FAILED),
    (E + "target server must be shut down cleanly", Out.FAILED),
    (E + "full_page_writes must be enabled in the source server", Out.FAILED),
    (E + "clusters are not compatible with this version of pg_rewind", Out.FAILED),
    ("", Out.FAILED),
]


@pytest.mark.parametrize(("output", "code", "expected"), CAPTURED)
def test_captured_outputs(output: str, code: int, expected: Out) -> None:
    assert classify(output, code).outcome is expected


@pytest.mark.parametrize(("output", "expected"), MESSAGES)
def test_message_texts(output: str, expected: Out) -> None:
    result = classify(output + "\n", 1)
    assert result.outcome is expected, result.reason
    assert result.reason


def test_failure_after_writing_began_is_interrupted() -> None:
    head = REWOUND.split("    68718")[0]
    out = head + E + 'could not fetch remote file "base/5/1259": server closed the connection unexpectedly\n'
    result = classify(out, 1)
    assert result.outcome is Out.INTERRUPTED and result.outcome.needs_reclone
    assert "could not fetch" in result.reason


def test_sizes_and_reasons() -> None:
    r = classify(REWOUND, 0)
    assert (r.copy_mb, r.source_mb, r.ok) == (67, 86, True)
    r = classify(WAL_GONE, 1)
    assert r.reason.startswith("pg_rewind: error: could not open file") and not r.ok
    assert classify(REFUSED, 1).reason.endswith("Connection refused")


def test_only_divergence_and_interruption_justify_a_reclone() -> None:
    assert {o for o in Out if o.needs_reclone} == {Out.DIVERGED_BEYOND_REWIND, Out.INTERRUPTED}
    assert {o for o in Out if o.retryable} == {Out.UNREACHABLE}


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ("pg_rewind (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", 15),
        ("pg_rewind (PostgreSQL) 13.16", 13),
        ("pg_rewind (PostgreSQL) 17.2 (Ubuntu 17.2-1.pgdg24.04+1)", 17),
    ],
)
def test_tool_major(text: str, major: int) -> None:
    assert tool_major(text) == major


def test_tool_major_refuses_garbage() -> None:
    with pytest.raises(ValueError):
        tool_major("pg_rewind 15")


D, CFG = Path("/pg/data"), Path("/etc/pgkeel/postgresql.conf")


@pytest.mark.parametrize("major", [15, 16, 17])
def test_argv_15_and_later_pass_the_config_file(major: int) -> None:
    argv = rewind_argv("pg_rewind", D, "host=h", CFG, major)
    assert argv == ["pg_rewind", "-D", "/pg/data", "--source-server=host=h", "--progress", f"--config-file={CFG}"]


@pytest.mark.parametrize("major", [13, 14])
def test_argv_13_14_never_let_pg_rewind_start_postgres(major: int) -> None:
    argv = rewind_argv("pg_rewind", D, "host=h", CFG, major)
    assert "--no-ensure-shutdown" in argv
    assert not any(a.startswith("--config-file") for a in argv)
    assert "-c" not in argv and "--restore-target-wal" not in argv


def test_argv_refuses_12() -> None:
    with pytest.raises(ValueError):
        rewind_argv("pg_rewind", D, "host=h", CFG, 12)


def test_single_user_recovery_reads_our_config_file() -> None:
    argv = single_user_recovery_argv("postgres", D, CFG)
    assert argv[:3] == ["postgres", "--single", "-F"]
    assert ["-c", f"config_file={CFG}"] == argv[5:7] and argv[-1] == "template1"
