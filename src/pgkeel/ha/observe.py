"""Observing: the store, the local postgres and (during elections) the peers, gathered into an Observation.

Invariant: observing never changes anything — no store write, no postgres setting — so a loop
that stops after observing has done no harm. Every call is bounded (store: dcs_timeout; SQL:
statement_timeout; peers: one deadline per round).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace

import psycopg

from pgkeel.dcs import DCS, DCSError
from pgkeel.ha import clock
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.failsafe import Promises
from pgkeel.ha.membership import current_members, current_settings
from pgkeel.ha.model import Memory, Observation, OldLeader, PeerProbe, PgState, ReplicaFlush, RestartRequest
from pgkeel.ha.peers import PeerProber
from pgkeel.ha.records import Address, ClusterState, FenceKind
from pgkeel.instance import CommandError, Instance, ServerStatus

log = logging.getLogger("pgkeel.agent")


class Observer:
    def __init__(
        self, config: AgentConfig, dcs: DCS, instance: Instance, prober: PeerProber, promises: Promises | None = None
    ) -> None:
        self.config = config
        self.dcs = dcs
        self.instance = instance
        self.prober = prober
        self.promises = promises
        self.last_status: ServerStatus | None = None  # the last SQL status, for /status' replication table
        self.last_view: ClusterState | None = None  # the last successful store read (failsafe needs it in outages)

    def peer_urls(self) -> dict[str, str | None]:
        """Each member's API address as last read from the store: whom the failsafe round asks."""
        view = self.last_view
        return {name: record.api_url for name, record in view.members.items()} if view is not None else {}

    def observe(self, memory: Memory, fence: FenceKind, restart: RestartRequest | None = None) -> Observation:
        read_at = clock.now()
        cluster = self.read_store()
        pg = self.read_postgres()
        peers: dict[str, PeerProbe] = {}
        old_leader = OldLeader.NOT_ASKED
        if cluster is not None and cluster.leader is None and pg.running and pg.in_recovery:
            peers, old_leader = self.prober.election_round(cluster)
        return replace(self.observation(memory, fence, pg, cluster, peers, old_leader, restart), store_read_at=read_at)

    def observation(
        self,
        memory: Memory,
        fence: FenceKind,
        pg: PgState,
        cluster: ClusterState | None,
        peers: dict[str, PeerProbe] | None = None,
        old_leader: OldLeader = OldLeader.NOT_ASKED,
        restart: RestartRequest | None = None,
    ) -> Observation:
        c = self.config
        at = clock.now()
        return Observation(
            me=c.name,
            members=current_members(c.members, cluster if cluster is not None else self.last_view),
            now=at,
            settings=current_settings(c.ha, cluster if cluster is not None else self.last_view),
            pg=pg,
            memory=memory,
            cluster=cluster,
            peers=peers or {},
            old_leader=old_leader,
            fence=fence,
            address=Address(c.advertise_host, c.pg_port),
            api_url=c.api_url,
            wall_now=time.time(),
            restart_request=restart,
            promised_until=self.promises.active_until(at) if self.promises is not None else None,
        )

    def read_store(self) -> ClusterState | None:
        try:
            view = ClusterState.decode(self.dcs.view())
            self.last_view = view
            return view
        except DCSError as exc:
            log.warning("coordination store unreachable: %s", exc)
            return None

    def read_postgres(self) -> PgState:
        pg = self._read_postgres()
        if pg.has_data and self.instance.bootstrap_unfinished():
            pg = replace(pg, unfinished_bootstrap=True)
        if pg.has_data and self.instance.restore_pending():
            pg = replace(pg, restored=True)
        return pg

    def _read_postgres(self) -> PgState:
        inst = self.instance
        if not inst.has_data():
            self.last_status = None
            return PgState(has_data=False, running=inst.is_running())
        following = inst.configured_leader()
        if inst.is_running():
            return self._running(following)
        self.last_status = None
        try:
            cd = inst.control_data()
        except (CommandError, KeyError, OSError) as exc:
            log.warning("cannot read pg_controldata: %s", exc)
            return PgState(has_data=True, running=False, following=following)
        return PgState(
            has_data=True,
            running=False,
            system_identifier=cd.system_identifier,
            timeline=cd.timeline,
            lsn=cd.checkpoint_lsn,
            following=following,
            was_primary=cd.state in ("in production", "shut down"),
        )

    def _running(self, following: str | None) -> PgState:
        inst = self.instance
        try:
            st = inst.status()
        except psycopg.Error as exc:
            # Running but not answering (starting, crash recovery): its role is unknown.
            log.debug("postgres running but not answering: %s", exc)
            self.last_status = None
            return PgState(has_data=True, running=True, in_recovery=None, following=following)
        self.last_status = st
        slots: frozenset[str] = frozenset()
        lost_slots: frozenset[str] = frozenset()
        with contextlib.suppress(psycopg.Error):
            states = inst.slot_states()
            slots = frozenset(states)
            lost_slots = frozenset(name for name, state in states.items() if state.lost and not state.active)
        lost = False
        if st.in_recovery and st.receiver_status != "streaming":
            with contextlib.suppress(OSError, psycopg.Error):
                lost = inst.wal_source_lost()
        return PgState(
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
            lost_slots=lost_slots,
            replication=tuple(ReplicaFlush(p.name, p.flush_lsn) for p in st.peers),
            wal_source_lost=lost,
        )
