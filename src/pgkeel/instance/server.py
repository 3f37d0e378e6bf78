"""One PostgreSQL server on one node, driven through its own tools and psycopg.

Every method does one thing PostgreSQL knows how to do (initdb, start, stop, promote,
clone, rewind …) and reports failure by raising; deciding *when* to do it is `pgkeel.ha`'s job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgkeel.instance.files import read_auto_conf, set_standby_signal, write_auto_conf
from pgkeel.instance.lsn import parse_lsn
from pgkeel.instance.process import CommandError, RunAs, run

# What pg_rewind needs from its source when it connects as a non-superuser (PostgreSQL docs,
# pg_rewind "Notes"): granted explicitly to the replication role, nothing more.
REWIND_GRANTS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


@dataclass(frozen=True)
class InstanceConfig:
    """Where one node's server lives and how it is reached."""

    name: str
    bindir: Path
    datadir: Path
    config_file: Path
    host: str
    port: int
    socket_dir: Path
    log_file: Path
    superuser: str
    replication_user: str
    passfile: Path
    superuser_password_file: Path | None = None
    replication_password_file: Path | None = None
    ssl_root_cert: Path | None = None  # cluster CA: peers are verified with sslmode=verify-full
    extra_options: dict[str, str] = field(default_factory=dict)

    @property
    def ssl_options(self) -> str:
        if self.ssl_root_cert is None:
            return "sslmode=prefer"
        return f"sslmode=verify-full sslrootcert={self.ssl_root_cert}"

    @property
    def slot_name(self) -> str:
        return slot_name_for(self.name)


def slot_name_for(member: str) -> str:
    """Slot names allow [a-z0-9_] only; member names are DNS labels with '-'."""
    return member.replace("-", "_").replace(".", "_").lower()


@dataclass(frozen=True)
class ControlData:
    """What pg_controldata says about a stopped (or running) data directory."""

    system_identifier: str
    state: str
    timeline: int
    checkpoint_lsn: int

    @property
    def clean_shutdown(self) -> bool:
        return self.state in ("shut down", "shut down in recovery")


@dataclass(frozen=True)
class ReplicaPeer:
    name: str
    state: str
    sync_state: str
    flush_lsn: int | None
    replay_lsn: int | None


@dataclass(frozen=True)
class ServerStatus:
    """A running server as seen over SQL in one round trip."""

    in_recovery: bool
    timeline: int
    lsn: int  # primary: flushed WAL end; replica: max(received, replayed)
    replay_lsn: int | None
    receiver_status: str | None  # 'streaming' etc. on a replica with a WAL receiver
    receiver_host: str | None
    receiver_port: int | None
    peers: tuple[ReplicaPeer, ...]
    system_identifier: str
    sync_standby_names: str


_STATUS_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8))::bit(32)::int END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       (SELECT timeline_id FROM pg_control_checkpoint()),
       (SELECT system_identifier::text FROM pg_control_system()),
       current_setting('synchronous_standby_names')
"""
_RECEIVER_SQL = "SELECT status, sender_host, sender_port, received_tli FROM pg_stat_wal_receiver"
_PEERS_SQL = "SELECT application_name, state, sync_state, flush_lsn::text, replay_lsn::text FROM pg_stat_replication"


class Instance:
    """Control of one server. Not thread-safe: the agent loop is its only caller."""

    def __init__(self, config: InstanceConfig, run_as: RunAs | None = None) -> None:
        self.config = config
        self.run_as = run_as or RunAs.for_current_process()
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: psycopg.Connection[Any] | None = None

    # --- paths and tools -------------------------------------------------------------
    def _tool(self, name: str) -> str:
        return str(self.config.bindir / name)

    def _env(self) -> dict[str, str]:
        return {"PGPASSFILE": str(self.config.passfile), "PGCONNECT_TIMEOUT": "3"}

    def has_data(self) -> bool:
        return (self.config.datadir / "PG_VERSION").exists()

    def data_dir_empty(self) -> bool:
        d = self.config.datadir
        return not d.exists() or not any(d.iterdir())

    # --- offline facts ------------------------------------------------------------------
    def control_data(self) -> ControlData:
        out = run([self._tool("pg_controldata"), "-D", str(self.config.datadir)], run_as=self.run_as, timeout=10)
        fields: dict[str, str] = {}
        for line in out.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        return ControlData(
            system_identifier=fields["Database system identifier"],
            state=fields["Database cluster state"],
            timeline=int(fields["Latest checkpoint's TimeLineID"]),
            checkpoint_lsn=parse_lsn(fields["Latest checkpoint location"]) or 0,
        )

    def postmaster_pid(self) -> int | None:
        """PID of a live postmaster for this data directory, whoever started it."""
        if self._child is not None and self._child.poll() is not None:
            self._child = None  # reaped: our child exited
        pidfile = self.config.datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        if self._child is not None and self._child.pid == pid:
            return pid
        # Not our child: make sure the pid is really a postmaster of this data directory.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        if not cmdline or not cmdline[0].endswith(b"postgres"):
            return None
        return pid

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def pidfile_status(self) -> str | None:
        """'starting' | 'ready' | 'standby' | 'stopping' from postmaster.pid, None when absent."""
        try:
            lines = (self.config.datadir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        return lines[7].strip() if len(lines) > 7 else "starting"

    # --- lifecycle ---------------------------------------------------------------------
    def initdb(self) -> None:
        """Create a new cluster with data checksums (pg_rewind needs them or wal_log_hints)."""
        self._prepare_datadir()
        if self.config.superuser_password_file is None:
            raise ValueError("initdb needs the superuser password file")
        run(
            [
                self._tool("initdb"),
                "-D",
                str(self.config.datadir),
                "-U",
                self.config.superuser,
                f"--pwfile={self.config.superuser_password_file}",
                "--data-checksums",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            run_as=self.run_as,
            timeout=120,
        )

    def _prepare_datadir(self) -> None:
        d = self.config.datadir
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
        self.run_as.chown(d)

    def _clear_stale_pidfile(self) -> None:
        """Remove a postmaster.pid whose process is gone or a zombie.

        PostgreSQL refuses to start while the PID in its lock file exists, and an orphaned
        postmaster killed with SIGKILL stays a zombie until init reaps it, which on some machines
        takes a while. Only called when no live postmaster owns the data directory.
        """
        pidfile = self.config.datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = "gone"
        if state in ("gone", "Z"):
            pidfile.unlink(missing_ok=True)

    def start(self, timeout: float = 60.0) -> None:
        """Start postgres with the shared config file; return once it accepts connections."""
        if self.is_running():
            return
        self._clear_stale_pidfile()
        c = self.config
        c.socket_dir.mkdir(parents=True, exist_ok=True)
        self.run_as.chown(c.socket_dir)
        options = {
            "config_file": str(c.config_file),
            "port": str(c.port),
            "listen_addresses": c.host,
            "unix_socket_directories": str(c.socket_dir),
            **c.extra_options,
        }
        argv = [self._tool("postgres"), "-D", str(c.datadir)]
        for name, value in options.items():
            argv += ["-c", f"{name}={value}"]
        log = open(c.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._child = subprocess.Popen(  # type: ignore[call-overload]
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(c.datadir),
                env={"LC_ALL": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                start_new_session=True,
                **self.run_as.kwargs(),
            )
        finally:
            log.close()
        self._wait_started(timeout)

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._child is not None and self._child.poll() is not None:
                code = self._child.returncode
                raise RuntimeError(f"postgres exited during start (code {code}); see {self.config.log_file}")
            status = self.pidfile_status()
            if status in ("ready", "standby"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"postgres did not accept connections within {timeout:g}s; see {self.config.log_file}")

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the postmaster: fast (SIGINT) or immediate (SIGQUIT); escalate to immediate on timeout."""
        self.close_connection()
        pid = self.postmaster_pid()
        if pid is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while self.postmaster_pid() == pid:
            if time.monotonic() > deadline:
                if sig == signal.SIGQUIT:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                else:
                    sig = signal.SIGQUIT
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + timeout
            time.sleep(0.02)

    def reload(self) -> None:
        pid = self.postmaster_pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    # --- SQL ------------------------------------------------------------------------------
    def connection(self) -> psycopg.Connection[Any]:
        """A cached autocommit connection over the unix socket as the superuser (peer auth)."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = self.new_connection()
        return self._conn

    def new_connection(self) -> psycopg.Connection[Any]:
        """A fresh autocommit superuser connection over the unix socket (peer auth)."""
        return psycopg.connect(
            host=str(self.config.socket_dir),
            port=self.config.port,
            user=self.config.superuser,
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
            application_name="pgkeel-agent",
            options="-c statement_timeout=5000",
        )

    def close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.connection().cursor() as cur:
                cur.execute(sql, params)  # type: ignore[arg-type]
                return cur.fetchall() if cur.description else []
        except psycopg.OperationalError:
            self.close_connection()
            raise

    def status(self) -> ServerStatus:
        (row,) = self.query(_STATUS_SQL)
        in_recovery, primary_lsn, primary_tli, recv, replay, ckpt_tli, sysid, ssn = row
        receiver = self.query(_RECEIVER_SQL) if in_recovery else []
        peers = tuple(
            ReplicaPeer(name, state, sync_state, parse_lsn(flush), parse_lsn(rep))
            for name, state, sync_state, flush, rep in self.query(_PEERS_SQL)
        )
        if in_recovery:
            recv_lsn, replay_lsn = parse_lsn(recv), parse_lsn(replay)
            lsn = max(recv_lsn or 0, replay_lsn or 0)
            timeline = int(receiver[0][3]) if receiver and receiver[0][3] else int(ckpt_tli)
        else:
            lsn, replay_lsn = parse_lsn(primary_lsn) or 0, None
            timeline = int(primary_tli)
        r = receiver[0] if receiver else (None, None, None, None)
        return ServerStatus(
            in_recovery=bool(in_recovery),
            timeline=timeline,
            lsn=lsn,
            replay_lsn=replay_lsn,
            receiver_status=r[0],
            receiver_host=r[1],
            receiver_port=r[2],
            peers=peers,
            system_identifier=str(sysid),
            sync_standby_names=ssn,
        )

    def promote(self, timeout: int = 30) -> None:
        (row,) = self.query("SELECT pg_promote(true, %s)", (timeout,))
        if not row[0]:
            raise RuntimeError(f"pg_promote did not finish within {timeout}s")
        set_standby_signal(self.config.datadir, False)

    def checkpoint(self) -> None:
        self.query("CHECKPOINT")

    # --- roles and slots -----------------------------------------------------------------
    def create_replication_role(self) -> None:
        """REPLICATION LOGIN with a SCRAM verifier computed client-side (no cleartext in logs)."""
        c = self.config
        if c.replication_password_file is None:
            raise ValueError("the replication password file is needed to create the replication role")
        password = c.replication_password_file.read_text().strip()
        conn = self.connection()
        verifier = conn.pgconn.encrypt_password(
            password.encode(), c.replication_user.encode(), b"scram-sha-256"
        ).decode()
        ident = sql.Identifier(c.replication_user)
        exists = self.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (c.replication_user,))
        verb = "ALTER" if exists else "CREATE"
        stmt = sql.SQL(verb + " ROLE {} WITH LOGIN REPLICATION NOSUPERUSER PASSWORD {}").format(
            ident, sql.Literal(verifier)
        )
        with conn.cursor() as cur:
            cur.execute(stmt)
            for fn in REWIND_GRANTS:
                cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION " + fn + " TO {}").format(ident))

    def slots(self) -> dict[str, int | None]:
        rows = self.query("SELECT slot_name, restart_lsn::text FROM pg_replication_slots WHERE slot_type = 'physical'")
        return {name: parse_lsn(lsn) for name, lsn in rows}

    def create_slot(self, name: str) -> None:
        self.query(
            "SELECT pg_create_physical_replication_slot(%s, true) "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
            (name, name),
        )

    def drop_slot(self, name: str) -> None:
        self.query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s AND NOT active",
            (name,),
        )

    def advance_slot(self, name: str, lsn: str) -> None:
        self.query("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (name, lsn))

    # --- roles on disk: standby configuration ----------------------------------------------
    def primary_conninfo(self, host: str, port: int) -> str:
        c = self.config
        return (
            f"host={host} port={port} user={c.replication_user} passfile={c.passfile} {c.ssl_options} "
            f"application_name={c.name} connect_timeout=2 keepalives_idle=2 keepalives_interval=1 keepalives_count=3"
        )

    def configure(self, *, standby: bool, leader: tuple[str, int] | None, sync_standby_names: str) -> bool:
        """Write this node's runtime settings; return True when postgresql.auto.conf changed."""
        settings = {"synchronous_standby_names": sync_standby_names, "recovery_target_timeline": "latest"}
        if standby and leader is not None:
            settings["primary_conninfo"] = self.primary_conninfo(*leader)
            settings["primary_slot_name"] = self.config.slot_name
        changed = write_auto_conf(self.config.datadir, settings)
        self.run_as.chown(self.config.datadir / "postgresql.auto.conf")
        if standby:
            set_standby_signal(self.config.datadir, True)
            self.run_as.chown(self.config.datadir / "standby.signal")
        else:
            set_standby_signal(self.config.datadir, False)
        return changed

    def configured_leader(self) -> str | None:
        """The host:port this node is told to stream from (None if none)."""
        info = read_auto_conf(self.config.datadir).get("primary_conninfo", "")
        parts = dict(p.split("=", 1) for p in info.split() if "=" in p)
        if "host" not in parts:
            return None
        return f"{parts['host']}:{parts.get('port', '5432')}"

    # --- cloning and rewinding ---------------------------------------------------------------
    def basebackup(self, host: str, port: int, use_slot: bool = True) -> None:
        """Clone the leader with streamed WAL; the datadir must be empty."""
        self._prepare_datadir()
        argv = [
            self._tool("pg_basebackup"),
            "-D",
            str(self.config.datadir),
            "-d",
            f"host={host} port={port} user={self.config.replication_user} application_name={self.config.name} "
            f"{self.config.ssl_options}",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-password",
        ]
        if use_slot:
            argv += ["-S", self.config.slot_name]
        run(argv, run_as=self.run_as, env=self._env(), timeout=3600)

    def rewind(self, host: str, port: int) -> bool:
        """pg_rewind against the leader; True when blocks were rewound, False when none were needed."""
        c = self.config
        # pg_rewind may run crash recovery in single-user mode first, which refuses standby mode.
        set_standby_signal(c.datadir, False)
        source = (
            f"host={host} port={port} user={c.replication_user} dbname=postgres "
            f"application_name={c.name}-rewind {c.ssl_options}"
        )
        out = run(
            [
                self._tool("pg_rewind"),
                "-D",
                str(c.datadir),
                f"--source-server={source}",
                f"--config-file={c.config_file}",
            ],
            run_as=self.run_as,
            env=self._env(),
            timeout=3600,
        )
        return "no rewind required" not in out

    def move_datadir_aside(self) -> Path:
        """Keep the old data (never delete it): rename to <datadir>.old-<timestamp>."""
        d = self.config.datadir
        target = d.with_name(f"{d.name}.old-{time.strftime('%Y%m%dT%H%M%S')}")
        d.rename(target)
        return target

    def remove_empty_datadir(self) -> None:
        """Remove the data directory only when it holds nothing (a failed clone's leftovers are moved aside)."""
        d = self.config.datadir
        if d.exists() and not any(d.iterdir()):
            d.rmdir()


__all__ = ["CommandError", "ControlData", "Instance", "InstanceConfig", "ServerStatus"]
