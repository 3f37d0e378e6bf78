"""pgkeel_fence in a real PostgreSQL 15: write commits are refused once the lease deadline passes,
whatever the agent is doing, and the watchdog kills a postgres that the library does not protect.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fence_pg import BINDIR, RUN_AS, Server, proc_alive, wait_for

from pgkeel.ha.config import AgentConfig
from pgkeel.ha.fencing import preload_libraries
from pgkeel.instance import CommandError, fence
from pgkeel.instance.fence import FenceFile, boottime, extension_library
from pgkeel.instance.process import run
from pgkeel.instance.watchdog import children_of, postmaster_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (BINDIR / "postgres").exists(), reason="PostgreSQL 15 binaries not installed"),
]
FENCED = "pgkeel_fence:"


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """One initdb'd data directory per module; each test gets a copy."""
    root = Path(tempfile.mkdtemp(prefix="pgkeel-fence-tpl-"))
    try:
        os.chmod(root, 0o755)
        RUN_AS.chown(root)
        run([str(BINDIR / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--no-sync", "-A", "trust"],
            run_as=RUN_AS, timeout=120)
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def workdir(template: Path) -> Iterator[Path]:
    """A private directory (owned by postgres): data/ copied from the template, the deadline file beside it."""
    root = Path(tempfile.mkdtemp(prefix="pgkeel-fence-"))
    try:
        os.chmod(root, 0o755)
        RUN_AS.chown(root)
        run(["cp", "-a", str(template), str(root / "data")], run_as=RUN_AS, timeout=60)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def library() -> Path:
    lib = extension_library(BINDIR)
    if lib is None:
        pytest.fail("pgkeel_fence.so is not installed: run scripts/build_fence.sh (make setup does)")
    return lib


@pytest.fixture
def make_server(workdir: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(*, preload: bool = True, extra: dict[str, str] | None = None, start: bool = True) -> Server:
        server = Server(workdir, workdir / "data", workdir / "fence", preload=preload, extra=extra)
        started.append(server)
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


def insert(conn: psycopg.Connection[Any], value: int) -> None:
    conn.execute("INSERT INTO t VALUES (%s)", (value,))


def rows(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x").fetchall()]


def refused(conn: psycopg.Connection[Any], value: int) -> str:
    """INSERT in autocommit; return the error message, fail when it committed."""
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as info:
        insert(conn, value)
    message = str(info.value)
    assert FENCED in message
    assert info.value.diag.message_hint and "pgkeel_fence.enforce" in info.value.diag.message_hint
    return message


@pytest.fixture
def armed(library: Path, make_server: Any, workdir: Path) -> Any:
    """A preloaded server whose lease is armed for a minute, with an empty table t."""
    ff = FenceFile.create(workdir / "fence")
    ff.arm_until(boottime() + 60)
    server = make_server()
    conn = server.connect()
    conn.execute("CREATE TABLE t (x int)")
    try:
        yield server, ff, conn
    finally:
        conn.close()
        ff.close()


def test_armed_lease_allows_writes_and_a_passed_deadline_refuses_them(armed: Any) -> None:
    _, ff, conn = armed
    insert(conn, 1)
    deadline = boottime() + 0.3
    ff.arm_until(deadline)
    accepted_starts: list[float] = []
    first_refusal = None
    value = 100
    while first_refusal is None:
        started = boottime()
        try:
            insert(conn, value)
            accepted_starts.append(started)
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            assert "the leader lease deadline has passed" in str(exc)
            first_refusal = boottime()
        value += 1
        assert boottime() < deadline + 5, "no refusal 5 s after the deadline"
    assert accepted_starts, "writes before the deadline were refused"
    assert max(accepted_starts) < deadline  # nothing that began after the deadline committed
    assert first_refusal - deadline < 0.5  # refused at the first commits after it (bound loose for loaded CI)
    refused(conn, 2)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (len(accepted_starts) + 1,)  # reads still work
    with conn.transaction():  # an explicit read-only transaction commits
        assert conn.execute("SELECT 1").fetchone() == (1,)
    ff.arm_until(boottime() + 60)
    insert(conn, 3)
    assert 2 not in rows(conn)
    assert {1, 3} <= set(rows(conn))


def test_disarmed_refuses_even_with_a_future_deadline(armed: Any) -> None:
    _, ff, conn = armed
    ff.disarm()
    assert "the lease is disarmed" in refused(conn, 1)
    conn.execute("SELECT count(*) FROM t")
    ff.arm_until(boottime() + 60)
    insert(conn, 2)
    assert rows(conn) == [2]


def test_missing_replaced_malformed_or_other_boot_file_refuses(armed: Any, workdir: Path) -> None:
    _, ff, conn = armed
    path = workdir / "fence"
    insert(conn, 1)  # this backend has the file mapped now
    path.unlink()
    assert "does not exist" in refused(conn, 2)
    # A new file at the path is followed (new inode), disarmed until armed.
    ff.close()
    ff = FenceFile.create(path)
    assert "disarmed" in refused(conn, 3)
    ff.arm_until(boottime() + 60)
    insert(conn, 4)
    raw = path.read_bytes()
    # The file of another boot: its CLOCK_BOOTTIME deadline means nothing now.
    with open(path, "r+b") as f:
        f.seek(fence.OFF_BOOT_ID)
        f.write(b"00000000-0000-0000-0000-000000000000")
    assert "before the last reboot" in refused(conn, 5)
    with open(path, "r+b") as f:
        f.write(b"XXXXXXXX")  # wrong magic
    assert "not a pgkeel_fence deadline file" in refused(conn, 6)
    os.truncate(path, 32)  # wrong size: refused, and the mapped backend does not crash
    refused(conn, 7)
    with open(path, "r+b") as f:
        f.write(raw)
    insert(conn, 8)
    assert rows(conn) == [1, 4, 8]
    ff.close()


def test_restart_after_the_deadline_stays_fenced_until_armed(armed: Any) -> None:
    server, ff, conn = armed
    insert(conn, 1)
    deadline = boottime() + 0.2
    ff.arm_until(deadline)
    wait_for(lambda: boottime() > deadline, 5, "the deadline")
    conn.close()
    server.restart()
    with server.connect() as c2:
        refused(c2, 2)
        ff.arm_until(boottime() + 60)
        insert(c2, 3)
        assert rows(c2) == [1, 3]


def test_enforce_off_by_reload_allows_writes(armed: Any) -> None:
    _, ff, conn = armed
    ff.disarm()
    refused(conn, 1)

    def enforce_is(value: str) -> Any:
        return lambda: conn.execute("SHOW pgkeel_fence.enforce").fetchone() == (value,)

    try:
        conn.execute("ALTER SYSTEM SET pgkeel_fence.enforce = off")  # not a transaction write
        conn.execute("SELECT pg_reload_conf()")
        wait_for(enforce_is("off"), 10, "enforce = off after reload")
        insert(conn, 2)
    finally:
        conn.execute("ALTER SYSTEM RESET pgkeel_fence.enforce")
        conn.execute("SELECT pg_reload_conf()")
    wait_for(enforce_is("on"), 10, "enforce = on after reload")
    refused(conn, 3)
    with pytest.raises(psycopg.errors.CantChangeRuntimeParam):
        conn.execute("SET pgkeel_fence.enforce = off")  # PGC_SIGHUP: no session can switch it off
    ff.arm_until(boottime() + 60)
    assert rows(conn) == [2]


def test_transaction_open_when_the_deadline_passes_cannot_commit(armed: Any) -> None:
    server, ff, conn = armed
    deadline = boottime() + 0.3
    ff.arm_until(deadline)
    with server.connect(autocommit=False) as tx:
        insert(tx, 1)  # has an xid now
        wait_for(lambda: boottime() > deadline, 5, "the deadline")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match=FENCED):
            tx.commit()
    ff.arm_until(boottime() + 60)
    assert rows(conn) == []


def connect_as(server: Server, user: str, **extra: Any) -> psycopg.Connection[Any]:
    """Over TCP (127.0.0.1), as applications connect; extra overrides (host= a socket directory)."""
    params = {**server.conninfo(), "host": "127.0.0.1", "user": user, **extra}
    return psycopg.connect(**params, autocommit=True, connect_timeout=5)


def test_fenced_primary_rejects_new_tcp_sessions_so_clients_find_the_new_primary(
        armed: Any, template: Path, workdir: Path) -> None:
    server, ff, conn = armed
    conn.execute("CREATE ROLE app LOGIN")
    conn.execute("CREATE ROLE repl LOGIN REPLICATION")
    conn.execute("GRANT ALL ON t TO app")
    with connect_as(server, "app") as app:
        insert(app, 1)  # a valid lease admits everyone
        ff.disarm()
        refused(app, 2)  # an open session stays, and its writes are refused at commit
    for user in ("app", "postgres"):  # applications over TCP, whatever their role
        with pytest.raises(psycopg.OperationalError) as info:
            connect_as(server, user)
        assert FENCED in str(info.value) and "no valid leader lease" in str(info.value)
        assert "refus" not in str(info.value).lower()  # the election reads "refused" as "no postmaster"
    admitted = [("repl", {}), ("postgres", {"host": str(server.root)}), ("app", {"host": str(server.root)})]
    for user, extra in admitted:  # peers' probes and replicas; the node's own agent and operators (socket)
        with connect_as(server, user, **extra) as c:
            assert c.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)

    # libpq routing by host list moves on at once to a node that is writable.
    other_root = workdir / "other"
    other_root.mkdir(mode=0o755)
    RUN_AS.chown(other_root)
    run(["cp", "-a", str(template), str(other_root / "data")], run_as=RUN_AS, timeout=60)
    other = Server(other_root, other_root / "data", other_root / "fence", preload=False)
    other.start()
    try:
        with other.connect() as c:
            c.execute("CREATE ROLE app LOGIN")
        route = {"host": "127.0.0.1,127.0.0.1", "port": f"{server.port},{other.port}",
                 "target_session_attrs": "read-write"}
        with connect_as(server, "app", **route) as routed:
            assert routed.info.port == other.port
        ff.arm_until(boottime() + 60)  # renewed: sessions are admitted again
        with connect_as(server, "app", **route) as routed:
            assert routed.info.port == server.port
            insert(routed, 3)
    finally:
        other.stop()

    conn.execute("ALTER SYSTEM SET pgkeel_fence.reject_sessions = off")
    try:
        conn.execute("SELECT pg_reload_conf()")
        ff.disarm()
        wait_for(lambda: conn.execute("SHOW pgkeel_fence.reject_sessions").fetchone() == ("off",), 10, "the reload")
        with connect_as(server, "app") as app:  # admitted, but still cannot write
            refused(app, 4)
    finally:
        conn.execute("ALTER SYSTEM RESET pgkeel_fence.reject_sessions")
        conn.execute("SELECT pg_reload_conf()")
    ff.arm_until(boottime() + 60)
    assert rows(conn) == [1, 3]


def test_two_phase_commit_is_fenced(library: Path, make_server: Any, workdir: Path) -> None:
    ff = FenceFile.create(workdir / "fence")
    ff.arm_until(boottime() + 60)
    server = make_server(extra={"max_prepared_transactions": "4"})
    with server.connect() as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("BEGIN")
        insert(conn, 1)
        conn.execute("PREPARE TRANSACTION 'p1'")
        ff.disarm()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match=FENCED):
            conn.execute("COMMIT PREPARED 'p1'")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match=FENCED):
            conn.execute("ROLLBACK PREPARED 'p1'")
        conn.execute("BEGIN")
        insert(conn, 2)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match=FENCED):
            conn.execute("PREPARE TRANSACTION 'p2'")
        conn.execute("ROLLBACK")
        ff.arm_until(boottime() + 60)
        conn.execute("COMMIT PREPARED 'p1'")
        assert rows(conn) == [1]
        assert conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)
    ff.close()


def test_no_file_configured_or_a_relative_path_refuses_writes(library: Path, make_server: Any, workdir: Path) -> None:
    """An invalid value only warns (custom GUCs are applied late) and leaves the path unset: fail closed."""
    for options in ({"shared_preload_libraries": "pgkeel_fence"},
                    {"shared_preload_libraries": "pgkeel_fence", "pgkeel_fence.deadline_file": "relative/fence"}):
        server = make_server(preload=False, extra=options)
        with server.connect() as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="deadline_file is not set"):
                conn.execute("CREATE TABLE t (x int)")
            assert conn.execute("SELECT 1").fetchone() == (1,)
        server.stop()
    assert "must be an absolute path" in server.log.read_text()


def test_configured_preload_is_read_from_the_config_file(workdir: Path) -> None:
    conf = workdir / "extra.conf"
    conf.write_text("shared_preload_libraries = 'pg_stat_statements, auto_explain'\n")
    RUN_AS.chown(conf)
    configured = fence.configured_preload(BINDIR, conf, workdir / "data")
    assert configured == "pg_stat_statements, auto_explain"
    assert fence.fence_settings(True, workdir / "fence", configured)["shared_preload_libraries"] == (
        "pg_stat_statements,auto_explain,pgkeel_fence")


def test_an_unreadable_auto_conf_does_not_stop_the_agent_before_it_runs(workdir: Path) -> None:
    """A hand-broken postgresql.auto.conf: the agent still starts (postgres' start then fails and
    backs off with its reason) and merges the shared config file's libraries."""
    conf = workdir / "shared.conf"
    conf.write_text("shared_preload_libraries = 'pg_stat_statements'\n")
    RUN_AS.chown(conf)
    auto = workdir / "data" / "postgresql.auto.conf"
    auto.write_text("work_mem = 'no closing quote\n")
    with pytest.raises(CommandError):  # the premise: postgres cannot read it
        fence.configured_preload(BINDIR, conf, workdir / "data", RUN_AS)
    config = AgentConfig(
        name="n-0", scope="s", members=["n-0"], dcs_url=f"sqlite://{workdir}/dcs.db", advertise_host="127.0.0.1",
        bindir=BINDIR, datadir=workdir / "data", config_file=conf, socket_dir=workdir, log_file=workdir / "pg.log",
        passfile=workdir / "pgpass", superuser_password_file=workdir / "su", replication_password_file=workdir / "rp",
    )
    assert preload_libraries(config, RUN_AS) == "pg_stat_statements"


# --- the watchdog, for hosts where the library cannot load --------------------------------------------

def _spawn_watchdog_via_parent(deadline_file: Path, datadir: Path, log: Path) -> tuple[subprocess.Popen[str], int]:
    """An 'agent' process that starts the watchdog and then just sleeps; returns it and the watchdog PID."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from pgkeel.instance.watchdog import spawn\n"
        f"p = spawn(Path({str(deadline_file)!r}), Path({str(datadir)!r}), Path({str(log)!r}))\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), line
    return parent, int(line)


def test_watchdog_kills_an_expired_primary_and_survives_its_agent(make_server: Any, workdir: Path) -> None:
    ff = FenceFile.create(workdir / "fence")
    ff.arm_until(boottime() - 1)
    ff.disarm()  # disarmed with a passed deadline: a replica, left alone
    server = make_server(preload=False)
    datadir = workdir / "data"
    pm = postmaster_of(datadir)
    assert pm == server.proc.pid
    parent, watchdog = _spawn_watchdog_via_parent(workdir / "fence", datadir, workdir / "watchdog.log")
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        time.sleep(0.5)  # 25 poll intervals: long enough for it to have acted on the disarmed file
        assert proc_alive(watchdog), "the watchdog died with its agent"
        assert server.proc.poll() is None, "the watchdog killed a disarmed postgres"
        with server.connect() as conn:
            conn.execute("CREATE TABLE t (x int)")
            children = children_of(pm)
        assert children, "a postmaster without children?"

        deadline = boottime() + 0.5
        ff.arm_until(deadline)
        with server.connect() as conn:
            insert(conn, 1)  # before the deadline: untouched
        server.proc.wait(timeout=5)
        killed_after = boottime() - deadline
        assert 0 <= killed_after < 0.5, killed_after
        assert server.proc.returncode == -signal.SIGKILL
        wait_for(lambda: not any(proc_alive(c) for c in children), 5, "the postmaster's children to die")
        assert "killed postmaster" in (workdir / "watchdog.log").read_text()

        (workdir / "fence").unlink()  # the agent's "stop watching"
        wait_for(lambda: not proc_alive(watchdog), 5, "the watchdog to exit once the file is gone")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if proc_alive(watchdog):
            os.kill(watchdog, signal.SIGKILL)
        ff.close()


def test_watchdog_exits_on_sigterm(make_server: Any, workdir: Path) -> None:
    ff = FenceFile.create(workdir / "fence")
    ff.arm_until(boottime() + 60)
    watchdog = subprocess.Popen([sys.executable, "-m", "pgkeel.instance.watchdog", "--deadline-file",
                                 str(workdir / "fence"), "--datadir", str(workdir / "data")],
                                stderr=subprocess.PIPE, text=True)
    try:
        assert watchdog.stderr is not None
        assert "watching" in watchdog.stderr.readline()  # its handlers are installed
        watchdog.terminate()
        assert watchdog.wait(timeout=5) == 0
    finally:
        if watchdog.poll() is None:
            watchdog.kill()
            watchdog.wait()
        ff.close()
