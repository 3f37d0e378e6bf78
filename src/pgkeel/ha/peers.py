"""Election probes: each peer's postgres asked *now*, and the last leader's postgres.

Positions come from the peers' own postgres over SQL (never a published snapshot, which can be
a loop old); each peer's API adds whether it reaches the store and whether it stopped receiving
WAL, without which its position is not final. The last leader is found through the durable
history record, so it is probed for as long as it answers, not just while its member record lives.
One deadline bounds the whole round: a paused or partitioned peer cannot hold an election up.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

from pgkeel.ha.config import AgentConfig
from pgkeel.ha.membership import current_members
from pgkeel.ha.model import OldLeader, PeerProbe
from pgkeel.ha.records import Address, ClusterState, FenceKind
from pgkeel.instance import parse_lsn

# The timeline, as the replication role can read it (no pg_ls_waldir, no pg_stat_wal_receiver details):
# the last checkpoint's is old on a primary promoted since its last checkpoint (then its current WAL
# file names the timeline) and on a standby until its next restartpoint, e.g. just after pg_rewind
# (then the minimum recovery point's timeline, which pg_rewind sets to the source's, is the newer one).
POSITION_SQL = """
SELECT pg_is_in_recovery(),
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END,
       GREATEST((SELECT timeline_id FROM pg_control_checkpoint()),
                CASE WHEN pg_is_in_recovery() THEN (SELECT min_recovery_end_timeline FROM pg_control_recovery())
                     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END),
       (SELECT system_identifier::text FROM pg_control_system())
"""


class PeerProber:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config

    def connect(self, address: Address, purpose: str, timeout: int) -> psycopg.Connection[Any]:
        """A connection to a peer's postgres as the replication role (TLS-verified when enabled)."""
        c = self.config
        ssl: dict[str, str] = {}
        if c.tls_enabled and c.ca_file is not None:
            ssl = {"sslmode": "verify-full", "sslrootcert": str(c.ca_file)}
        conninfo = make_conninfo(
            host=address.host,
            port=address.port,
            user=c.replication_user,
            dbname="postgres",
            passfile=str(c.passfile),
            connect_timeout=timeout,
            application_name=f"{c.name}-{purpose}",
            options="-c statement_timeout=1000",
            **ssl,
        )
        return psycopg.connect(conninfo, autocommit=True)

    def election_round(self, cluster: ClusterState) -> tuple[dict[str, PeerProbe], OldLeader]:
        me = self.config.name
        targets = {
            name: record
            for name, record in cluster.members.items()
            if name != me and record.address is not None and name in current_members(self.config.members, cluster)
        }
        history = cluster.history
        ask_old = history is not None and history.leader != me and history.fence is FenceKind.NONE
        settings = self.config.ha
        # One deadline for the whole round: libpq rounds connect_timeout up to 2 s.
        deadline = max(1.0, 2 * settings.dcs_timeout)
        # The old leader gets longer: answering late must not read as "gone" on a busy machine.
        old_deadline = max(2.0, deadline)
        started = time.monotonic()
        probes: dict[str, PeerProbe] = {}
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(targets) + 1)
        try:
            futures = {
                pool.submit(self.probe, name, record.address, record.api_url): name
                for name, record in targets.items()
                if record.address is not None
            }
            old = (
                pool.submit(self.old_leader, history.address)
                if ask_old and history is not None and history.address is not None
                else None
            )
            try:
                for fut in concurrent.futures.as_completed(futures, timeout=deadline):
                    probe = fut.result()
                    if probe is not None:
                        probes[futures[fut]] = probe
            except concurrent.futures.TimeoutError:
                pass
            answer = OldLeader.NOT_ASKED
            if old is not None:
                try:
                    answer = old.result(timeout=max(0.05, old_deadline - (time.monotonic() - started)))
                except concurrent.futures.TimeoutError:
                    answer = OldLeader.UNKNOWN  # no answer in time is not "dead"
            elif ask_old:
                answer = OldLeader.UNKNOWN  # the history has no address to ask
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return probes, answer

    def probe(self, name: str, address: Address, api_url: str | None) -> PeerProbe | None:
        """The peer's present position from its postgres; its API says whether it can lead and is detached."""
        api = self._api_status(api_url)
        try:
            with self.connect(address, "probe", timeout=1) as conn:
                row = conn.execute(POSITION_SQL).fetchone()
        except psycopg.Error:
            return None
        if row is None:
            return None
        in_recovery, received, replayed, flushed, timeline, sysid = row
        positions = (received, replayed) if in_recovery else (flushed,)
        lsn = max(parse_lsn(x) or 0 for x in positions)
        postgres = api.get("postgres")
        detached = isinstance(postgres, dict) and "following" in postgres and postgres["following"] is None
        return PeerProbe(
            name=name,
            running=True,
            in_recovery=bool(in_recovery),
            timeline=int(timeline) if timeline is not None else None,
            lsn=lsn,
            system_identifier=str(sysid) if sysid is not None else None,
            dcs_ok=api.get("dcs_ok") is True,
            detached=detached,
            candidate=api.get("candidate") is True,
        )

    def _api_status(self, api_url: str | None) -> dict[str, Any]:
        if not api_url:
            return {}
        try:
            body = httpx.get(
                f"{api_url}/status", timeout=self.config.ha.dcs_timeout, verify=self.config.api_verify
            ).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    def old_leader(self, address: Address) -> OldLeader:
        """Does the last leader's postgres still run as a primary? Refused means no postmaster listens."""
        try:
            with self.connect(address, "probe", timeout=1) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.OperationalError as exc:
            return OldLeader.NOT_PRIMARY if "refused" in str(exc).lower() else OldLeader.UNKNOWN
        except psycopg.Error:
            return OldLeader.UNKNOWN
        if row is None:
            return OldLeader.UNKNOWN
        return OldLeader.NOT_PRIMARY if row[0] else OldLeader.PRIMARY
