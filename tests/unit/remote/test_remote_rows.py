"""The status rows read from the store alone (no agent answered): what a record says, the lag against the
leader's published LSN, the sync set, and a document member without a record; and /cluster's codec."""

from __future__ import annotations

from pgkeel.api.cluster import decode_cluster, encode_cluster
from pgkeel.dcs import Leader
from pgkeel.ha.records import ClusterState, MemberRecord, MemberState, Pause, Role, SyncRecord
from pgkeel.remote.rows import cluster_view

STATE = ClusterState(
    leader=Leader("db1", term=3, ttl=30.0),
    members={
        "db1": MemberRecord("db1", Role.PRIMARY, MemberState.RUNNING, "10.0.0.11", 5432, "https://10.0.0.11:8008", 2,
                            9000, "7301"),
        "db2": MemberRecord("db2", Role.REPLICA, MemberState.STREAMING, "10.0.0.12", 5432, None, 2, 8000),
    },
    sync=SyncRecord("db1", ("db2",), 1),
    pause=Pause(until=None, reason="upgrade"),
)


def test_the_store_alone_gives_each_records_row_and_lists_a_silent_document_member() -> None:
    view = cluster_view("shop", ("db1", "db2", "db3"), STATE, {}, {}, "store etcds://10.0.0.11:2379")
    rows = {m["name"]: m for m in view["members"]}
    assert list(rows) == ["db1", "db2", "db3"]
    assert (rows["db1"]["role"], rows["db1"]["state"], rows["db1"]["lag_bytes"]) == ("primary", "running", None)
    db2 = rows["db2"]
    assert (db2["state"], db2["receive_lag_bytes"], db2["sync"]) == ("streaming", 1000, "quorum")
    assert (rows["db3"]["role"], rows["db3"]["state"], rows["db3"]["port"]) == ("unknown", "no record", None)
    assert (view["leader"], view["system_identifier"], view["paused"]) == ("db1", "7301", True)


def test_the_cluster_body_decodes_to_the_state_it_was_made_from() -> None:
    assert decode_cluster(encode_cluster(STATE)) == STATE
    assert decode_cluster({"members": "junk", "leader": {"holder": 5}}) == ClusterState()
