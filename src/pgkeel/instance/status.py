"""What a running server says about itself over SQL: role, positions, timeline, peers, slots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgkeel.instance.lsn import parse_lsn
from pgkeel.instance.model import ReplicaPeer, ServerStatus, SlotState

if TYPE_CHECKING:
    from pgkeel.instance.server import Instance

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
              WHERE name ~ '^[0-9A-F]{8}[.]history$') END
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
    in_recovery, primary_lsn, primary_tli, recv, replay, ckpt_tli, sysid, ssn, history_tli = row
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


def read_slot_states(inst: Instance) -> dict[str, SlotState]:
    """Physical slots with wal_status, so the agent can see a member whose WAL is gone (F13)."""
    return {
        name: SlotState(name, bool(active), parse_lsn(lsn), status, None if safe is None else int(safe))
        for name, active, lsn, status, safe in inst.query(_SLOTS_SQL)
    }
