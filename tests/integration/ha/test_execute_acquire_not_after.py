"""The real executor honours AcquireLeader.not_after: an election whose observation is too old is not sent.

A real standby (PostgreSQL 15 on loopback) and a real SQLite store: a late acquisition leaves the
store without a leader, the fence disarmed and the standby in recovery, although the plan goes on
to promote; an acquisition in time takes the lease, arms the fence and promotes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from instance_nodes import Nodes, make_nodes, needs_pg15

from pgkeel.dcs.sqlite import SQLiteDCS
from pgkeel.ha.actions import AcquireLeader, Promote
from pgkeel.ha.clock import now
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.execute import Executor
from pgkeel.ha.fencing import NodeFence
from pgkeel.ha.model import Done, Failed, LeaseHeld
from pgkeel.ha.peers import PeerProber
from pgkeel.ha.records import FenceKind
from pgkeel.instance import Instance
from pgkeel.instance.fence import FenceFile

pytestmark = [pytest.mark.integration, needs_pg15]


@dataclass
class Standby:
    instance: Instance
    store: SQLiteDCS
    fence: FenceFile
    executor: Executor


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    yield from make_nodes()


@pytest.fixture
def standby(nodes: Nodes, tmp_path: Path) -> Iterator[Standby]:
    """Member b streaming from a, with the executor the agent would build for b."""
    b = nodes.replica(nodes.primary("a"), "b")
    nodes.wait_for(lambda: b.status().receiver_status == "streaming")
    c = b.config
    config = AgentConfig(
        name=c.name, scope="freshness", members=["a", "b"], dcs_url=f"sqlite://{tmp_path}/dcs.db",
        advertise_host=c.host, bindir=c.bindir, datadir=c.datadir, config_file=c.config_file,
        pg_host=c.host, pg_port=c.port, socket_dir=c.socket_dir, log_file=c.log_file,
        superuser=c.superuser, replication_user=c.replication_user, passfile=c.passfile,
        superuser_password_file=c.superuser_password_file, replication_password_file=c.replication_password_file,
    )
    store = SQLiteDCS(tmp_path / "dcs.db", "freshness")
    fence = FenceFile.create(tmp_path / "fence")
    fence.disarm()
    # Kind NONE: nothing enforces the deadline file here; the tests only read whether it was armed.
    executor = Executor(config, store, b, PeerProber(config), NodeFence(FenceKind.NONE, fence, {}, "test"))
    try:
        yield Standby(b, store, fence, executor)
    finally:
        fence.close()
        store.close()


def elect(not_after: float) -> tuple[AcquireLeader, Promote]:
    return AcquireLeader(not_after=not_after), Promote(sync_names="", within=5.0)


def test_an_acquisition_executed_after_its_not_after_takes_no_lease_and_does_not_promote(standby: Standby) -> None:
    results = standby.executor.run(elect(not_after=now() - 0.001))

    assert [(type(action), type(outcome)) for action, outcome in results] == [(AcquireLeader, Failed)]
    assert standby.store.view().leader is None, "the store's acquire was called"
    assert not standby.fence.read().armed
    assert standby.instance.status().in_recovery, "the standby was promoted"


def test_an_acquisition_executed_before_its_not_after_takes_the_lease_and_promotes(standby: Standby) -> None:
    results = standby.executor.run(elect(not_after=now() + 30.0))

    assert [(type(action), type(outcome)) for action, outcome in results] == [
        (AcquireLeader, LeaseHeld), (Promote, Done),
    ]
    leader = standby.store.view().leader
    assert leader is not None and leader.holder == "b"
    assert standby.fence.read().armed
    Nodes.wait_for(lambda: not standby.instance.status().in_recovery)
