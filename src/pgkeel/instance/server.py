"""One PostgreSQL server on one node, driven through its own tools and psycopg.

Every method does one thing PostgreSQL knows how to do (initdb, start, stop, promote,
clone, rewind …) and reports failure by raising; deciding *when* to do it is `pgkeel.ha`'s job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from pgkeel.instance import aside, logs, pidfile, recovery, roles, space, status
from pgkeel.instance.aside import AsideInfo, AsideOccupied
from pgkeel.instance.files import AUTO_CONF, auto_conf_drift, read_auto_conf, set_standby_signal, write_auto_conf
from pgkeel.instance.lsn import parse_lsn
from pgkeel.instance.model import ControlData, InstanceConfig, ReplicaPeer, ServerStatus, SlotState, slot_name_for
from pgkeel.instance.process import CommandError, RunAs, pgbackrest_env, run
from pgkeel.instance.rewind import RewindOutcome, RewindResult, rewind_marker
from pgkeel.instance.roles import REWIND_GRANTS

log = logging.getLogger("pgkeel.instance")


class RewindError(CommandError):
    """`Instance.rewind` (the bool API) failed; `.result` says how (see RewindOutcome)."""

    def __init__(self, result: RewindResult) -> None:
        super().__init__(["pg_rewind"], result.returncode or -1, f"{result.outcome}: {result.reason}\n{result.output}")
        self.result = result


class MajorVersionMismatch(RuntimeError):
    """The data directory is another major version than the binaries: postgres would refuse it at every start."""


class RewindIncomplete(RuntimeError):
    """A pg_rewind died after it began writing: this data directory must be re-cloned, not started."""


class Instance:
    """Control of one server. Not thread-safe: the agent loop is its only caller."""

    def __init__(self, config: InstanceConfig, run_as: RunAs | None = None) -> None:
        self.config = config
        self.run_as = run_as or RunAs.for_current_process()
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._drift_logged: list[str] = []  # the auto.conf drift last logged: warn once per change, not per loop
        self._binaries_major: int | None = None  # `postgres --version` of bindir, read once

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
        """PID of a live postmaster for this data directory, whoever started it (see pidfile.py)."""
        if self._child is not None and self._child.poll() is not None:
            self._child = None  # reaped: our child exited
        return pidfile.live_postmaster(self.config.datadir, self._child.pid if self._child else None)

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def pidfile_status(self) -> str | None:
        """'starting' | 'ready' | 'standby' | 'stopping' from postmaster.pid, None when absent."""
        return pidfile.startup_status(self.config.datadir)

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

    def start(self, timeout: float = 60.0) -> None:
        """Start postgres with the shared config file; return once it accepts connections."""
        if self.is_running():
            return
        if self.rewind_incomplete():
            raise RewindIncomplete(
                f"{self.config.datadir} was left half-rewound by an interrupted pg_rewind "
                f"({rewind_marker(self.config.datadir)}): it must be re-cloned, not started"
            )
        self._check_binaries()
        pidfile.clear_stale(self.config.datadir)
        c = self.config
        logs.rotate_at_start(c.log_file, c.log_max_bytes)  # nothing holds it open now
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
        since = log.tell()  # where this start's lines begin, for the reason it failed
        try:
            self._child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(c.datadir),
                env={"LC_ALL": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **pgbackrest_env()},
                start_new_session=True,
                **self.run_as.kwargs(),
            )
        finally:
            log.close()
        self._wait_started(timeout, since)

    def _check_binaries(self) -> None:
        """Refuse, with the reason, what postgres would refuse at every start: no server binary, or a data
        directory of another major version (PG_VERSION) than the binaries."""
        server = self.config.bindir / "postgres"
        try:
            data_major: int | None = int((self.config.datadir / "PG_VERSION").read_text().strip())
        except (OSError, ValueError):
            data_major = None  # no data yet: initdb or a clone makes it with these binaries
        if not server.is_file():
            need = f"the PostgreSQL {data_major} server" if data_major else "the PostgreSQL server"
            raise MajorVersionMismatch(f"no {server}: install {need} there, or set spec.postgres.bindir")
        if data_major is None:
            return
        if self._binaries_major is None:
            self._binaries_major = recovery.tool_major(self, "postgres")
        if data_major != self._binaries_major:
            raise MajorVersionMismatch(
                f"{self.config.datadir} holds PostgreSQL {data_major} data (PG_VERSION) and {server} is PostgreSQL "
                f"{self._binaries_major}: not starting it, postgres would refuse it every time. Major upgrades are "
                f"not supported yet: set spec.postgres.version back to {data_major}"
            )

    def _wait_started(self, timeout: float, since: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._child is not None and self._child.poll() is not None:
                code = self._child.returncode
                why = logs.start_failure_reason(self.config.log_file, since)
                raise RuntimeError(f"postgres exited during start (code {code}), {self.config.log_file} ends:\n{why}")
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

    def rotate_log(self) -> bool:
        """Bound postgres.log while postgres runs (copy to <log>.1, truncate); True when rotated.
        start() rotates by rename; a long-running server needs this called now and then."""
        return logs.rotate_running(self.config.log_file, self.config.log_max_bytes)

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
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        except psycopg.OperationalError:
            self.close_connection()
            raise

    def status(self) -> ServerStatus:
        return status.read_status(self)

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
        roles.create_replication_role(self)

    def set_superuser_password(self) -> None:
        """The superuser's password from its file (after a restore brought another cluster's)."""
        roles.set_superuser_password(self)

    def slot_states(self) -> dict[str, SlotState]:
        """Physical slots with wal_status, so the agent can see a member whose WAL is gone (F13)."""
        return status.read_slot_states(self)

    def slots(self) -> dict[str, int | None]:
        rows = self.query("SELECT slot_name, restart_lsn::text FROM pg_replication_slots WHERE slot_type = 'physical'")
        return {name: parse_lsn(lsn) for name, lsn in rows}

    def wal_source_lost(self) -> bool:
        """This standby's leader no longer has the WAL it needs (see recovery.wal_source_lost)."""
        return recovery.wal_source_lost(self)

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
        self.run_as.chown(self.config.datadir / AUTO_CONF)
        drift = self.auto_conf_drift()
        if drift and drift != self._drift_logged:
            log.warning(
                "%s sets %s outside the cluster's document (ALTER SYSTEM?): kept on this node only, so another "
                "node that takes over will not have it; move it to spec.postgres.parameters",
                self.config.datadir / AUTO_CONF, ", ".join(drift),
            )
        self._drift_logged = drift
        if standby:
            set_standby_signal(self.config.datadir, True)
            self.run_as.chown(self.config.datadir / "standby.signal")
        else:
            set_standby_signal(self.config.datadir, False)
        return changed

    def auto_conf_drift(self) -> list[str]:
        """Parameters set in postgresql.auto.conf besides the agent's own (ALTER SYSTEM), for /status."""
        return auto_conf_drift(self.config.datadir)

    def configured_leader(self) -> str | None:
        """The host:port this node is told to stream from (None if none); an IPv6 host in brackets, as
        ha.records.Address prints it."""
        info = read_auto_conf(self.config.datadir).get("primary_conninfo", "")
        parts = dict(p.split("=", 1) for p in info.split() if "=" in p)
        if "host" not in parts:
            return None
        host = parts["host"]
        return f"{f'[{host}]' if ':' in host else host}:{parts.get('port', '5432')}"

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

    def try_rewind(self, host: str, port: int, major: int | None = None) -> RewindResult:
        """pg_rewind against the leader (postgres stopped), classified; never raises for pg_rewind's own
        failures. Retry on UNREACHABLE; re-clone only when `result.outcome.needs_reclone`."""
        return recovery.try_rewind(self, host, port, major)

    def rewind(self, host: str, port: int) -> bool:
        """The older API: True when rewound, False when not needed, RewindError (a CommandError) otherwise."""
        result = self.try_rewind(host, port)
        if not result.ok:
            raise RewindError(result)
        return result.outcome is RewindOutcome.REWOUND

    @property
    def bootstrap_marker(self) -> Path:
        """Beside PGDATA (initdb wants an empty directory): present from before initdb until the cluster is
        recorded in the store, so data a dead bootstrap left is known to be ours and never used."""
        d = self.config.datadir
        return d.with_name(d.name + ".bootstrapping")

    def mark_bootstrap(self) -> None:
        self.bootstrap_marker.parent.mkdir(parents=True, exist_ok=True)
        self.bootstrap_marker.write_text(f"{os.getpid()}\n")

    def clear_bootstrap_mark(self) -> None:
        self.bootstrap_marker.unlink(missing_ok=True)

    def bootstrap_unfinished(self) -> bool:
        return self.bootstrap_marker.exists()

    @property
    def restore_marker(self) -> Path:
        """Beside PGDATA (never copied by pg_basebackup): this data was restored from a backup for a new
        cluster and no store records it yet, so this node may found the cluster with it (not initdb)."""
        d = self.config.datadir
        return d.with_name(d.name + ".restored")

    def restore_pending(self) -> bool:
        return self.restore_marker.exists()

    def clear_restore_mark(self) -> None:
        self.restore_marker.unlink(missing_ok=True)

    def rewind_incomplete(self) -> bool:
        """An interrupted pg_rewind left this directory unusable (start() refuses it)."""
        return rewind_marker(self.config.datadir).exists()

    def move_datadir_aside(self, reason: str = "unspecified") -> Path:
        """Keep the old data (never delete it) in the node's single aside slot, <datadir>.aside.

        Raises AsideOccupied (nothing moved) when a copy is already kept there or in a legacy
        <datadir>.old-* directory: the caller must alarm instead of cloning.
        """
        d = self.config.datadir
        target = aside.move_aside(d, reason)
        self.run_as.chown(target / aside.MARKER)
        marker = rewind_marker(d)
        if marker.exists():  # it described the directory just moved, not the clone to come
            marker.replace(target / marker.name)
        return target

    def asides(self) -> list[AsideInfo]:
        """Kept copies of this node's data directory (for /status and /metrics)."""
        return aside.list_asides(self.config.datadir)

    def free_bytes(self) -> int:
        """Free bytes on the data directory's filesystem."""
        return space.free_bytes(self.config.datadir)

    def clone_space(self, host: str, port: int) -> space.CloneSpace:
        """Would a clone of host:port fit here? Asks the source over the replication role's login
        (raises psycopg.Error when it cannot be reached). See CloneSpace.fits / .explain()."""
        size, skipped = recovery.source_bytes(self, host, port)
        return space.clone_space(size, self.free_bytes(), skipped)

    def remove_empty_datadir(self) -> None:
        """Remove the data directory only when it holds nothing (a failed clone's leftovers are moved aside)."""
        d = self.config.datadir
        if d.exists() and not any(d.iterdir()):
            d.rmdir()


__all__ = [
    "REWIND_GRANTS",
    "AsideInfo",
    "AsideOccupied",
    "CommandError",
    "ControlData",
    "Instance",
    "InstanceConfig",
    "MajorVersionMismatch",
    "ReplicaPeer",
    "RewindError",
    "RewindIncomplete",
    "ServerStatus",
    "SlotState",
    "slot_name_for",
]
