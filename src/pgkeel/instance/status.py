"""What a running server says about itself over SQL: role, positions, timeline, peers, slots.

A replica reports what it received and what it replayed separately: a replica whose replay is paused
or slow receives everything (receive lag 0) while reads see old data (replay lag megabytes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgkeel.instance.lsn import parse_lsn
from pgkeel.instance.model import ReplicaPeer, ServerStatus, SlotState

if TYPE_CHECKING:
    from pgkeel.instance.server import Instance

# pending_restart: our own `-c port=… -c listen_addresses=…` (instance.server) override the file; PostgreSQL
# flags such a parameter pending after every reload although no restart would change it.
_STATUS_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn()::text END,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8))::bit(32)::int END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       (SELECT timeline_id FROM pg_control_checkpoint()),
       (SELECT system_identifier::text FROM pg_control_system()),
       current_setting('synchronous_standby_names'),
       CASE WHEN pg_is_in_recovery() THEN
            (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir()
              WHERE name ~ '^[0-9A-F]{8}[.]history$') END,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN coalesce(pg_last_wal_receive_lsn(), '0/0') <= pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
       ARRAY(SELECT name FROM pg_settings WHERE pending_restart AND source <> 'command line' ORDER BY name),
       split_part(current_setting('server_version'), ' ', 1)
"""
_RECEIVER_SQL = "SELECT status, sender_host, sender_port, received_tli FROM pg_stat_wal_receiver"
_SLOTS_SQL = (
    "SELECT slot_name, active, restart_lsn::text, wal_status, safe_wal_size "
    "FROM pg_replication_slots WHERE slot_type = 'physical'"
)
_PEERS_SQL = "SELECT application_name, state, sync_state, flush_lsn::text, replay_lsn::text FROM pg_stat_replication"


def read_status(inst: Instance) -> ServerStatus:
    """A running server as seen over SQL (its role, position, timeline, peers)."""
    (row,) = inst.query(_STATUS_SQL)
    in_recovery, primary_lsn, primary_tli, recv, replay, ckpt_tli, sysid, ssn, history_tli = row[:9]
    paused, replay_lag_seconds, pending_restart, version = row[9:]
    receiver = inst.query(_RECEIVER_SQL) if in_recovery else []
    peers = tuple(
        ReplicaPeer(name, state, sync_state, parse_lsn(flush), parse_lsn(rep))
        for name, state, sync_state, flush, rep in inst.query(_PEERS_SQL)
    )
    if in_recovery:
        recv_lsn, replay_lsn = parse_lsn(recv), parse_lsn(replay)
        lsn = max(recv_lsn or 0, replay_lsn or 0)
        # Without a WAL receiver the checkpoint's timeline can be old: a standby that switched timeline
        # (streaming, or pg_rewind) keeps the previous one there until its next restartpoint. The
        # newest history file it holds is the timeline it follows, and the one its promotion would
        # build on (an election must not see a rewound replica as a timeline behind).
        known = max(int(ckpt_tli), int(history_tli or 0))
        timeline = int(receiver[0][3]) if receiver and receiver[0][3] else known
    else:
        lsn, recv_lsn, replay_lsn = parse_lsn(primary_lsn) or 0, None, None
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
        receive_lsn=recv_lsn,
        replay_paused=None if paused is None else bool(paused),
        replay_lag_seconds=None if replay_lag_seconds is None else max(0.0, float(replay_lag_seconds)),
        pending_restart=tuple(str(n) for n in pending_restart or ()),
        version=str(version) if version else None,
    )


def read_slot_states(inst: Instance) -> dict[str, SlotState]:
    """Physical slots with wal_status, so the agent can see a member whose WAL is gone (F13)."""
    return {
        name: SlotState(name, bool(active), parse_lsn(lsn), status, None if safe is None else int(safe))
        for name, active, lsn, status, safe in inst.query(_SLOTS_SQL)
    }
