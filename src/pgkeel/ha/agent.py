"""The node agent: observe → decide → act, every loop_wait. All I/O of the HA logic lives here.

`decide` is pure (pgkeel.ha.decide); this module gathers the Observation (store, local
postgres, peers during elections) and carries out the Actions in order, stopping at the
first that fails, so an action list never runs past a lost race.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
import psycopg

from pgkeel.dcs import DCS, ClusterView, DCSError
from pgkeel.ha import model as m
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.decide import BOOTSTRAP_PLACEHOLDER, decide, sync_standby_names
from pgkeel.instance import CommandError, Instance, format_lsn, parse_lsn, slot_name_for
from pgkeel.tls import SERVER_CERT, CertificateAuthority, ensure_server_certificate, inspect

log = logging.getLogger("pgkeel.agent")

QUIET_ACTIONS = (m.Publish, m.RenewLeader, m.EnsureSlots, m.EnsureSync, m.Wait)
# Actions whose duration grows with the data (cloning, rewinding): the loop is busy, not hung.
LONG_ACTIONS = (m.Bootstrap, m.CloneFrom, m.Rewind)


class Agent:
    def __init__(self, config: AgentConfig, dcs: DCS, instance: Instance | None = None) -> None:
        self.config = config
        self.dcs = dcs
        self.instance = instance or Instance(config.instance_config())
        self.settings = config.settings()
        self.memory = m.Memory()
        self.view: ClusterView | None = None
        self.pg = m.PgState()
        self.last_status: Any = None
        self.last_loop_end: float | None = None
        self.loop_duration = 0.0
        self.last_actions: list[str] = []
        self.last_reason = ""
        self.long_action: str | None = None
        self.cert_not_after: str | None = None
        self._bootstrap_failures = 0
        self._config_seen: tuple[float, ...] | None = None
        self._check_pending_restart: float | None = None
        self.pending_restart: list[str] = []
        self._bootstrap_retry_at = 0.0
        self._cert_checked: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {}

    # --- the loop -------------------------------------------------------------------------
    def run_forever(self) -> None:
        log.info("agent %s starting (scope %s, store %s)", self.config.name, self.config.scope, self.config.dcs_url)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:  # the loop must survive anything one iteration throws
                log.exception("loop iteration failed")
            self.loop_duration = time.monotonic() - started
            self.last_loop_end = time.monotonic()
            self._wake.wait(max(0.0, self.settings.loop_wait - self.loop_duration))
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def run_once(self) -> list[m.Action]:
        self._fence_if_overdue()
        self.maintain_certificate()
        self.follow_config_changes()
        observation = self.observe()
        actions = decide(observation)
        self.execute(actions, observation)
        self._publish_snapshot(observation, actions)
        return actions

    def _fence_if_overdue(self) -> None:
        """Before any I/O: a primary whose last renewal is nearly a TTL old stops now.

        After a pause (SIGSTOP, a frozen VM) the lease may have passed to another node while this
        one slept; asking the store first would let clients write to two primaries meanwhile.
        """
        last = self.memory.last_renewal
        if not (self.pg.running and self.pg.in_recovery is False and last is not None):
            return
        overdue = time.monotonic() - last
        # Past ttl - one store call, the lease may be gone before a renewal could land: stop first.
        # (Below that, the loop's renewal either succeeds, proving the lease, or the store
        # errors and decide() fences at the stricter fence deadline.)
        limit = self.settings.ttl - self.settings.dcs_timeout
        if overdue > limit:
            log.warning("last lease renewal %.1fs ago (limit %.1fs): fencing before anything else", overdue, limit)
            self._do_Fence(m.Fence(reason="lease renewal overdue"), None)  # type: ignore[arg-type]
            self.pg = m.PgState(has_data=True, running=True, in_recovery=True)

    def _config_fingerprint(self) -> tuple[float, ...]:
        files = [self.config.config_file, self.config.config_file.parent / "pg_hba.conf"]
        stamps = []
        for path in files:
            try:
                stat = path.stat()
                stamps += [stat.st_mtime, float(stat.st_size), float(stat.st_ino)]
            except OSError:
                stamps += [0.0, 0.0, 0.0]
        return tuple(stamps)

    def follow_config_changes(self) -> None:
        """A changed postgresql.conf / pg_hba.conf (e.g. a ConfigMap update) is reloaded at once;
        parameters that need a restart are reported in /status rather than restarting behind anyone's back."""
        fingerprint = self._config_fingerprint()
        if self._config_seen is None:
            self._config_seen = fingerprint
            return
        if fingerprint != self._config_seen and self.instance.is_running():
            self._config_seen = fingerprint
            log.info("configuration files changed: reloading postgres")
            self.instance.reload()
            self._check_pending_restart = time.monotonic() + 1.0  # the reload is asynchronous
        if self._check_pending_restart is not None and time.monotonic() >= self._check_pending_restart:
            self._check_pending_restart = None
            with contextlib.suppress(psycopg.Error):
                rows = self.instance.query("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
                self.pending_restart = [r[0] for r in rows]
                if self.pending_restart:
                    log.warning("changed parameters need a restart: %s", ", ".join(self.pending_restart))

    def maintain_certificate(self, every: float = 60.0) -> None:
        """Issue this node's certificate before postgres first starts; renew it before expiry, then reload."""
        c = self.config
        if not c.tls_enabled or c.tls_dir is None:
            return
        now = time.monotonic()
        if self._cert_checked is not None and now - self._cert_checked < every:
            return
        self._cert_checked = now
        if c.ca_file is not None and c.ca_key_file is not None and c.ca_key_file.exists():
            try:
                ca = CertificateAuthority.load(c.ca_file, c.ca_key_file)
                names = c.tls_names or [c.advertise_host]
                if ensure_server_certificate(c.tls_dir, ca, c.name, names, c.renew_before_days, c.certificate_days):
                    log.info("issued a server certificate for %s", ", ".join(names))
                    if self.instance.is_running():
                        self.instance.reload()  # PostgreSQL re-reads its certificate on reload
            except (OSError, ValueError) as exc:
                log.error("cannot issue the server certificate: %s", exc)
        info = inspect(c.tls_dir / SERVER_CERT)
        self.cert_not_after = info.not_after.isoformat() if info else None

    # --- observing -------------------------------------------------------------------------
    def observe(self) -> m.Observation:
        now = time.monotonic()
        try:
            view: ClusterView | None = self.dcs.view()
        except DCSError as exc:
            log.warning("coordination store unreachable: %s", exc)
            view = None
        self.view = view
        pg = self._observe_postgres()
        self.pg = pg
        self._update_memory(now, view, pg)
        peers: dict[str, m.PeerProbe] = {}
        old_leader_alive = False
        if view is not None and view.leader is None and pg.running and pg.in_recovery:
            peers, old_leader_alive = self._probe_election(view)
        return m.Observation(
            me=self.config.name,
            members=tuple(self.config.members),
            now=time.monotonic(),
            settings=self.settings,
            pg=pg,
            memory=self.memory,
            view=view,
            peers=peers,
            old_leader_alive=old_leader_alive,
        )

    def _observe_postgres(self) -> m.PgState:
        inst = self.instance
        if not inst.has_data():
            return m.PgState(has_data=False, running=inst.is_running())
        following = inst.configured_leader()
        slots: frozenset[str] = frozenset()
        if inst.is_running():
            try:
                st = inst.status()
                self.last_status = st
                with contextlib.suppress(psycopg.Error):
                    slots = frozenset(inst.slots())
                return m.PgState(
                    has_data=True,
                    running=True,
                    system_identifier=st.system_identifier,
                    in_recovery=st.in_recovery,
                    timeline=st.timeline,
                    lsn=st.lsn,
                    following=following,
                    streaming=st.receiver_status == "streaming",
                    sync_standby_names=st.sync_standby_names,
                    slots=slots,
                )
            except psycopg.Error as exc:
                # Running but not answering (starting, crash recovery): report as running, unknown role.
                log.debug("postgres running but not answering: %s", exc)
                self.last_status = None
                return m.PgState(has_data=True, running=True, in_recovery=None, following=following)
        self.last_status = None
        try:
            cd = inst.control_data()
        except (CommandError, KeyError, OSError) as exc:
            log.warning("cannot read pg_controldata: %s", exc)
            return m.PgState(has_data=True, running=False, following=following)
        return m.PgState(
            has_data=True,
            running=False,
            system_identifier=cd.system_identifier,
            timeline=cd.timeline,
            lsn=cd.checkpoint_lsn,
            following=following,
            was_primary=cd.state in ("in production", "shut down"),
        )

    def _update_memory(self, now: float, view: ClusterView | None, pg: m.PgState) -> None:
        mem = self.memory
        leading = view is not None and view.leader is not None and view.leader.holder == self.config.name
        pg_down_since = (mem.pg_down_since or now) if (leading and not pg.running) else None
        # Only a replica that has a leader to stream from can be "stalled"; during an election
        # nobody streams, and that must not count against the next leader.
        following_leader = view is not None and view.leader is not None and not leading
        replica_stalled = following_leader and pg.running and pg.in_recovery is not False and not pg.streaming
        not_streaming_since = (mem.not_streaming_since or now) if replica_stalled else None
        self.memory = replace(mem, pg_down_since=pg_down_since, not_streaming_since=not_streaming_since)

    def _probe_election(self, view: ClusterView) -> tuple[dict[str, m.PeerProbe], bool]:
        """Ask every peer's API for its present position, and check the last leader's postgres."""
        targets = {
            name: member.data.get("api_url")
            for name, member in view.members.items()
            if name != self.config.name and member.data.get("api_url")
        }
        last_leader = (view.sync or {}).get("leader") or next(
            (n for n, mem in view.members.items() if mem.data.get("role") == "primary" and n != self.config.name),
            None,
        )
        probes: dict[str, m.PeerProbe] = {}
        # One deadline for the whole round: libpq rounds connect_timeout up to 2 s, and a paused or
        # partitioned old leader must not hold the election up for that long.
        deadline = max(1.0, 2 * self.settings.dcs_timeout)
        # The old leader's postgres gets longer: answering late must not read as "gone" on a busy
        # machine, or a primary whose agent died would be replaced while it still takes writes.
        alive_deadline = max(2.0, deadline)
        started = time.monotonic()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(targets) + 1)
        try:
            futures = {pool.submit(self._probe_peer, name, url): name for name, url in targets.items()}
            alive_future = pool.submit(self._leader_postgres_alive, view, last_leader)
            try:
                for fut in concurrent.futures.as_completed(futures, timeout=deadline):
                    probe = fut.result()
                    if probe is not None:
                        probes[futures[fut]] = probe
            except concurrent.futures.TimeoutError:
                pass
            try:
                alive = alive_future.result(timeout=max(0.05, alive_deadline - (time.monotonic() - started)))
            except concurrent.futures.TimeoutError:
                alive = False  # no answer in time: a live agent would have fenced it anyway
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return probes, alive

    def _connect_peer(self, member: dict[str, Any], purpose: str, timeout: int) -> psycopg.Connection[Any]:
        """A connection to a peer's postgres as the replication role (TLS-verified when enabled)."""
        return psycopg.connect(
            host=member["host"],
            port=member["port"],
            user=self.config.replication_user,
            dbname="postgres",
            passfile=str(self.config.passfile),
            connect_timeout=timeout,
            application_name=f"{self.config.name}-{purpose}",
            autocommit=True,
            options="-c statement_timeout=1000",
            **self._ssl_kwargs(),
        )

    def _ssl_kwargs(self) -> dict[str, str]:
        c = self.config
        if c.tls_enabled and c.ca_file is not None:
            return {"sslmode": "verify-full", "sslrootcert": str(c.ca_file)}
        return {}

    def _probe_peer(self, name: str, url: str) -> m.PeerProbe | None:
        try:
            resp = httpx.get(f"{url}/status", timeout=self.settings.dcs_timeout)
            d = resp.json()
        except (httpx.HTTPError, ValueError):
            return None
        pg = d.get("postgres") or {}
        return m.PeerProbe(
            name=name,
            running=bool(pg.get("running")),
            in_recovery=bool(pg.get("in_recovery")),
            timeline=pg.get("timeline"),
            lsn=pg.get("lsn"),
            system_identifier=pg.get("system_identifier"),
        )

    def _leader_postgres_alive(self, view: ClusterView, last_leader: str | None) -> bool:
        """True when the last leader's postgres answers as a primary although its lease expired.

        That is an agent that died while its postgres runs on: promoting now would make two
        writable primaries. A crashed, paused or partitioned node does not answer in time.
        """
        if not last_leader or last_leader == self.config.name:
            return False
        member = view.members.get(last_leader)
        if member is None or "host" not in member.data:
            return False
        try:
            with self._connect_peer(member.data, "probe", timeout=1) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                return row is not None and row[0] is False
        except psycopg.Error:
            return False

    # --- acting --------------------------------------------------------------------------------
    def execute(self, actions: list[m.Action], o: m.Observation) -> None:
        names = [a.kind for a in actions]
        if names != self.last_actions or any(not isinstance(a, QUIET_ACTIONS) for a in actions):
            for a in actions:
                if not isinstance(a, QUIET_ACTIONS) or (isinstance(a, m.Wait) and a.reason != self.last_reason):
                    log.info("%s%s", a.kind, f": {a.reason}" if a.reason else "")
                if isinstance(a, m.Wait):
                    self.last_reason = a.reason
        self.last_actions = names
        for action in actions:
            handler = getattr(self, f"_do_{action.kind}")
            self.long_action = action.kind if isinstance(action, LONG_ACTIONS) else None
            try:
                ok = handler(action, o)
            except (DCSError, CommandError, psycopg.Error, OSError, RuntimeError, TimeoutError) as exc:
                log.error("%s failed: %s", action.kind, exc)
                return
            finally:
                self.long_action = None
            if ok is False:
                log.info("%s did not succeed; skipping the rest of this loop's actions", action.kind)
                return

    def _leader_address(self, name: str | None) -> tuple[str, int] | None:
        if not name or self.view is None:
            return None
        member = self.view.members.get(name)
        if member is None or "host" not in member.data:
            return None
        return str(member.data["host"]), int(member.data["port"])

    def _desired_sync_names(self) -> str:
        if self.settings.mode != "quorum":
            return ""
        return sync_standby_names(self.config.name, tuple(self.config.members), self.settings.sync_standbys)

    def _do_Bootstrap(self, a: m.Bootstrap, o: m.Observation) -> bool:
        me = self.config.name
        if time.monotonic() < self._bootstrap_retry_at:
            return False  # a failed attempt backs off (1, 2, 4 … 60 s) instead of an initdb per loop
        placeholder = BOOTSTRAP_PLACEHOLDER + me
        if not self.dcs.initialize(placeholder):
            return False
        if not self._acquire():
            self.dcs.clear_initialize(placeholder)
            return False
        inst = self.instance
        try:
            inst.initdb()
            inst.configure(standby=False, leader=None, sync_standby_names="")
            inst.start()
            inst.create_replication_role()
            sysid = inst.status().system_identifier
        except Exception:
            log.exception("bootstrap failed; releasing the initialize key")
            inst.stop("immediate")
            if inst.has_data():
                # It never served anything, but data is never deleted: keep it aside so the next
                # attempt (here or on another node) starts clean instead of a foreign cluster.
                log.warning("failed bootstrap's data directory kept at %s", inst.move_datadir_aside())
            self.dcs.clear_initialize(placeholder)
            self.dcs.release_leader(me)
            self._bootstrap_failures += 1
            self._bootstrap_retry_at = time.monotonic() + min(60.0, 2.0 ** (self._bootstrap_failures - 1))
            raise
        self.dcs.set_initialize(placeholder, sysid)
        log.info("bootstrapped cluster %s (system identifier %s)", self.config.scope, sysid)
        return True

    def _do_CloneFrom(self, a: m.CloneFrom, o: m.Observation) -> bool:
        address = self._leader_address(a.leader)
        if address is None:
            return False
        inst = self.instance
        if not inst.data_dir_empty():
            aside = inst.move_datadir_aside()
            log.warning("data directory was not empty and held no cluster; kept it at %s", aside)
        try:
            inst.basebackup(*address, use_slot=True)
        except CommandError as exc:
            if "replication slot" not in str(exc):
                raise
            inst.remove_empty_datadir()
            inst.basebackup(*address, use_slot=False)
        inst.configure(standby=True, leader=address, sync_standby_names=self._desired_sync_names())
        inst.start()
        log.info("cloned from %s", a.leader)
        return True

    def _acquire(self) -> bool:
        sent = time.monotonic()
        ok = self.dcs.acquire_leader(self.config.name, self.settings.ttl)
        if ok:
            self.memory = replace(self.memory, last_renewal=sent)
        return ok

    def _do_ClaimInitialize(self, a: m.ClaimInitialize, o: m.Observation) -> bool:
        sysid = self.pg.system_identifier
        if not sysid:
            return False
        won = self.dcs.initialize(sysid)
        log.info("initialize key %s with system identifier %s", "claimed" if won else "already taken", sysid)
        return won

    def _do_AcquireLeader(self, a: m.AcquireLeader, o: m.Observation) -> bool:
        return self._acquire()

    def _do_RenewLeader(self, a: m.RenewLeader, o: m.Observation) -> bool:
        sent = time.monotonic()
        ok = self.dcs.renew_leader(self.config.name, self.settings.ttl)
        if ok:
            self.memory = replace(self.memory, last_renewal=sent)
        return ok

    def _do_ReleaseLeader(self, a: m.ReleaseLeader, o: m.Observation) -> bool:
        self.memory = replace(self.memory, last_renewal=None, rewind_needed=True)
        return self.dcs.release_leader(self.config.name)

    def _do_StartPostgres(self, a: m.StartPostgres, o: m.Observation) -> bool:
        leader = self._leader_address(a.leader) if a.standby else None
        self.instance.configure(standby=a.standby, leader=leader, sync_standby_names=self._desired_sync_names())
        try:
            self.instance.start()
        except (RuntimeError, TimeoutError):
            failures = self.memory.start_failures + 1
            if a.standby and a.leader and failures >= 3:
                # A replica that cannot start (e.g. its minimum recovery point is on a timeline the
                # leader's history does not contain) needs pg_rewind, or failing that a fresh clone.
                log.warning("%d failed starts as a replica of %s: rewinding", failures, a.leader)
                self.memory = replace(self.memory, start_failures=0, rewind_needed=True)
            else:
                self.memory = replace(self.memory, start_failures=failures)
            raise
        self.memory = replace(self.memory, start_failures=0, not_streaming_since=None)
        return True

    def _do_StopPostgres(self, a: m.StopPostgres, o: m.Observation) -> bool:
        self.instance.stop(a.mode)
        if a.rewind_after:
            self.memory = replace(self.memory, rewind_needed=True)
        return True

    def _do_Fence(self, a: m.Fence, o: m.Observation) -> bool:
        inst = self.instance
        inst.stop("immediate", timeout=5.0)  # then SIGKILL: fencing must not wait on a stuck child
        self.memory = replace(self.memory, rewind_needed=True, last_renewal=None)
        inst.configure(standby=True, leader=None, sync_standby_names=self._desired_sync_names())
        try:
            inst.start(timeout=5.0)
        except TimeoutError:
            # a crashed primary restarted as a standby without a WAL source may never become
            # consistent; it serves no writes either way, and the loop rejoins it to the leader
            log.info("fenced postgres is read-only and still recovering")
        return True

    def _do_Promote(self, a: m.Promote, o: m.Observation) -> bool:
        inst = self.instance
        names = self._desired_sync_names()
        if not inst.status().in_recovery:
            return True  # already a primary (e.g. promoted by an earlier, interrupted loop)
        # Writes must wait for the quorum from the first commit on the new timeline.
        inst.configure(standby=True, leader=None, sync_standby_names=names)
        inst.reload()
        inst.promote()
        inst.configure(standby=False, leader=None, sync_standby_names=names)
        inst.reload()
        self.memory = replace(self.memory, rewind_needed=False)
        log.info("promoted %s", self.config.name)
        # pg_rewind reads the source's timeline from its control file, which a promotion updates
        # only at the next checkpoint: force one now (in the background) so old primaries can rejoin.
        threading.Thread(target=self._checkpoint, name="pgkeel-checkpoint", daemon=True).start()
        return True

    def _checkpoint(self) -> None:
        try:
            with self.instance.new_connection() as conn:  # own connection: Instance's is the loop's
                conn.execute("SET statement_timeout = 0")  # a checkpoint may take longer than 5 s
                conn.execute("CHECKPOINT")
        except psycopg.Error as exc:
            log.warning("checkpoint after promotion failed: %s", exc)

    def _do_Follow(self, a: m.Follow, o: m.Observation) -> bool:
        address = self._leader_address(a.leader)
        if address is None:
            return False
        self.instance.configure(standby=True, leader=address, sync_standby_names=self._desired_sync_names())
        self.instance.reload()
        self.memory = replace(self.memory, not_streaming_since=None)
        return True

    def _do_Rewind(self, a: m.Rewind, o: m.Observation) -> bool:
        address = self._leader_address(a.leader)
        if address is None:
            return False
        inst = self.instance
        inst.stop("fast")
        try:
            rewound = inst.rewind(*address)
            log.info("pg_rewind against %s: %s", a.leader, "rewound" if rewound else "no rewind required")
        except CommandError as exc:
            log.warning("pg_rewind failed (%s); cloning afresh with the old data kept aside", exc)
            aside = inst.move_datadir_aside()
            log.warning("old data directory kept at %s", aside)
            inst.basebackup(*address, use_slot=True)
        self.memory = replace(self.memory, rewind_needed=False)
        return True

    def _do_EnsureSync(self, a: m.EnsureSync, o: m.Observation) -> bool:
        view = self.view
        if view is None:
            return False
        desired = {"leader": self.config.name, "members": list(a.names), "quorum": a.quorum}
        if view.sync != desired and not self.dcs.set_sync(desired, view.sync_version):
            return False  # lost a race: re-read next loop
        names = self._desired_sync_names()
        if self.pg.running and self.pg.sync_standby_names != names:
            self.instance.configure(standby=bool(self.pg.in_recovery), leader=None, sync_standby_names=names)
            self.instance.reload()
        return True

    def _do_EnsureSlots(self, a: m.EnsureSlots, o: m.Observation) -> bool:
        if not self.pg.running:
            return True
        wanted = {slot_name_for(n): n for n in a.names}
        for slot in sorted(set(wanted) - self.pg.slots):
            self.instance.create_slot(slot)
        if self.pg.in_recovery and self.view is not None:
            # On a replica, keep the others' slots moving with their published positions (never
            # past our own replay point), so after a promotion they retain exactly what is needed.
            status = self.last_status
            replay = status.replay_lsn if status is not None else None
            current = self.instance.slots()
            for slot, name in wanted.items():
                member = self.view.members.get(name)
                target = member.data.get("lsn") if member else None
                if target is None or replay is None:
                    continue
                target = min(int(target), replay)
                if current.get(slot) is not None and target > (current.get(slot) or 0):
                    with contextlib.suppress(psycopg.Error):
                        self.instance.advance_slot(slot, format_lsn(target))
        return True

    def _do_Switchover(self, a: m.Switchover, o: m.Observation) -> bool:
        """Planned handover with no lost commit and the shortest write outage PostgreSQL allows.

        Checkpoint while still serving (so the shutdown checkpoint is short), renew the lease,
        stop fast (walsenders ship all WAL up to the shutdown checkpoint), confirm on the target's
        own postgres that it received that WAL, then hand the lease over atomically.
        """
        view = self.view
        me = self.config.name
        target = a.target
        member = view.members.get(target) if view else None
        if member is None or member.data.get("state") != "streaming":
            log.warning("switchover to %s refused: it is not a streaming replica", target)
            self.dcs.clear_switchover()
            return False
        inst = self.instance
        with contextlib.suppress(psycopg.Error):
            inst.checkpoint()
        if not self._do_RenewLeader(m.RenewLeader(), o):
            return False
        inst.stop("fast")
        final = inst.control_data().checkpoint_lsn
        caught_up = self._wait_received(member.data, final, timeout=self.settings.fence_deadline)
        if not caught_up or not self.dcs.take_over_leader(me, target, self.settings.ttl):
            log.warning("switchover to %s aborted: target did not confirm WAL up to %s", target, format_lsn(final))
            # Back as a replica: if the lease is still ours the next loop promotes this node again;
            # if it expired meanwhile, the election decides. Never restart as a primary here.
            inst.configure(standby=True, leader=None, sync_standby_names=self._desired_sync_names())
            inst.start()
            self.dcs.clear_switchover()
            return False
        self.dcs.clear_switchover()
        self.memory = replace(self.memory, last_renewal=None, rewind_needed=True)
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{member.data['api_url']}/wake", timeout=0.5)
        log.info("switchover: handed the lease to %s at %s", target, format_lsn(final))
        return True

    def _wait_received(self, member: dict[str, Any], lsn: int, timeout: float) -> bool:
        """Poll the target's own postgres until it has received WAL past `lsn`."""
        deadline = time.monotonic() + timeout
        try:
            with self._connect_peer(member, "switchover", timeout=2) as conn:
                while time.monotonic() < deadline:
                    row = conn.execute("SELECT pg_last_wal_receive_lsn()::text").fetchone()
                    received = parse_lsn(row[0]) if row else None
                    if received is not None and received > lsn:
                        return True
                    time.sleep(0.01)
        except psycopg.Error as exc:
            log.warning("cannot confirm the switchover target's position: %s", exc)
        return False

    def _do_ClearSwitchover(self, a: m.ClearSwitchover, o: m.Observation) -> bool:
        self.dcs.clear_switchover()
        return True

    def _do_Publish(self, a: m.Publish, o: m.Observation) -> bool:
        self.dcs.set_member(self.config.name, self.member_record(a.role, a.state), self.config.member_ttl)
        return True

    def _do_Wait(self, a: m.Wait, o: m.Observation) -> bool:
        return True

    def _do_Refuse(self, a: m.Refuse, o: m.Observation) -> bool:
        if self.memory.refused is None:
            log.error("refusing to join: %s", a.reason)
            self.memory = replace(self.memory, refused=a.reason)
        with contextlib.suppress(DCSError):
            self.dcs.set_member(self.config.name, self.member_record("refused", "refused"), self.config.member_ttl)
        return True

    # --- reporting ----------------------------------------------------------------------------
    def member_record(self, role: str, state: str) -> dict[str, Any]:
        pg = self.pg
        return {
            "role": role,
            "state": state,
            "host": self.config.advertise_host,
            "port": self.config.pg_port,
            "api_url": self.config.api_url,
            "timeline": pg.timeline,
            "lsn": pg.lsn,
            "system_identifier": pg.system_identifier,
            "postgres_pid": self.instance.postmaster_pid(),
            "agent_pid": os.getpid(),
        }

    def _publish_snapshot(self, o: m.Observation, actions: list[m.Action]) -> None:
        view = self.view
        leader = view.leader.holder if view and view.leader else None
        pg = self.pg
        role = "stopped"
        if pg.running:
            role = "replica" if pg.in_recovery else "primary"
        lag = None
        if view is not None and leader and leader in view.members and pg.lsn is not None:
            leader_lsn = view.members[leader].data.get("lsn")
            if leader_lsn is not None and leader != self.config.name:
                lag = max(0, int(leader_lsn) - pg.lsn)
        snapshot = {
            "name": self.config.name,
            "scope": self.config.scope,
            "role": role,
            "leader": leader,
            "is_leader": leader == self.config.name,
            "dcs_ok": view is not None,
            "postgres": {
                "running": pg.running,
                "in_recovery": pg.in_recovery,
                "timeline": pg.timeline,
                "lsn": pg.lsn,
                "streaming": pg.streaming,
                "system_identifier": pg.system_identifier,
                "sync_standby_names": pg.sync_standby_names,
                "pid": self.instance.postmaster_pid(),
                "port": self.config.pg_port,
                "host": self.config.advertise_host,
            },
            "lag_bytes": lag,
            "replication": [
                {"name": p.name, "state": p.state, "sync_state": p.sync_state, "flush_lsn": p.flush_lsn}
                for p in (self.last_status.peers if self.last_status is not None else ())
            ],
            "actions": [{"kind": a.kind, "reason": a.reason} for a in actions if not isinstance(a, m.Publish)],
            "refused": self.memory.refused,
            "tls": {"enabled": self.config.tls_enabled, "certificate_not_after": self.cert_not_after},
            "pending_restart": self.pending_restart,
            "loop_duration_s": self.loop_duration,
            "agent_pid": os.getpid(),
        }
        with self._lock:
            self._snapshot = snapshot

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._snapshot)

    def loop_alive(self) -> bool:
        """The loop finished an iteration recently, or is inside a long action (clone, rewind)."""
        if self.long_action is not None:
            return True
        last = self.last_loop_end
        bound = max(10 * self.settings.loop_wait, 2 * self.settings.ttl) + 30  # + one slow postgres start
        return last is not None and time.monotonic() - last < bound

    def request_switchover(self, to: str | None, force: bool = False) -> dict[str, Any]:
        view = self.dcs.view()
        leader = view.leader.holder if view.leader else None
        if to is not None and to not in self.config.members:
            raise ValueError(f"unknown member {to!r}; members are {', '.join(self.config.members)}")
        if leader is None and not force:
            raise ValueError("no leader holds the lease: use failover --force with a target")
        if leader is not None and to == leader:
            raise ValueError(f"{to} is already the leader")
        request = {"from": leader, "to": to, "force": force}
        self.dcs.set_switchover(request)
        return request
