"""A real HAProxy (Debian's 2.6) with examples/haproxy.cfg — a config written for Patroni — routes a local
3-node cluster's rw and ro ports through a switchover (pgkeel.api.probes answers its checks)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from clients import Writer, rows_on, wait_for

from pgkeel.local import LocalCluster
from pgkeel.local.haproxy import HAProxy, server_names

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "haproxy.cfg"


@pytest.fixture
def start_haproxy() -> Iterator[Callable[[LocalCluster], HAProxy]]:
    """HAProxy children of this test, each in its own tmp dir; stopped by PID afterwards, also on failure."""
    started: list[tuple[HAProxy, Path]] = []

    def start(cluster: LocalCluster) -> HAProxy:
        workdir = Path(tempfile.mkdtemp(prefix="pgkeel-haproxy-", dir="/tmp"))
        proxy = HAProxy(CONFIG, cluster, workdir)
        started.append((proxy, workdir))
        return proxy.start()

    yield start
    for proxy, workdir in started:
        try:
            proxy.stop()
            print(f"\n----- haproxy.log (last 30 lines)\n{proxy.log_tail(30)}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def where(conn: psycopg.Connection) -> tuple[int, bool]:
    """(the postgres port this session reached, whether that server is in recovery)."""
    row = conn.execute("SELECT current_setting('port')::int, pg_is_in_recovery()").fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


@dataclass
class ReadSampler:
    """Opens a fresh session through the ro port every 50 ms and records where it landed."""

    dsn: str
    samples: list[tuple[float, int, bool]] = field(default_factory=list)  # (monotonic at connect, port, in recovery)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ReadSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()  # HAProxy picked the server after this instant
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    port, in_recovery = where(conn)
                self.samples.append((began, port, in_recovery))
            except psycopg.Error:
                self.errors += 1  # no server up in ro for a moment: HAProxy closes the session
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


@dataclass(frozen=True)
class Topology:
    ports: dict[str, int]  # member -> postgres port
    old: str  # the primary before the switchover
    target: str  # the replica the switchover promotes
    servers: dict[str, str]  # member -> HAProxy server name


def switchover_setup(make_cluster, start_haproxy) -> tuple[LocalCluster, HAProxy, Topology]:  # type: ignore[no-untyped-def]
    """A local 3-node cluster with HAProxy in front, and who leads now and who will."""
    cluster = make_cluster()
    status = cluster.status()
    ports = {m["name"]: m["port"] for m in status["members"]}
    old = status["leader"]
    target = next(name for name in ports if name != old)
    servers = {member: server for server, member in server_names(cluster).items()}
    return cluster, start_haproxy(cluster), Topology(ports, old, target, servers)


def test_patroni_haproxy_config_routes_rw_and_ro_through_a_switchover(make_cluster, start_haproxy) -> None:  # type: ignore[no-untyped-def]
    cluster, proxy, t = switchover_setup(make_cluster, start_haproxy)
    ports, old, target, servers = t.ports, t.old, t.target, t.servers
    rw_dsn, ro_dsn = cluster.port_dsn(proxy.rw_port), cluster.port_dsn(proxy.ro_port)
    # HAProxy starts every server UP; its checks (OPTIONS /primary, OPTIONS /replica) sort them out.
    proxy.wait_servers("rw", {servers[old]})
    proxy.wait_servers("ro", {servers[n] for n in ports if n != old})

    with psycopg.connect(rw_dsn, autocommit=True) as conn:
        assert where(conn) == (ports[old], False)
        conn.execute("CREATE TABLE through_haproxy (v text)")
        conn.execute("INSERT INTO through_haproxy VALUES ('written via rw')")
    reached = set()
    for _ in range(6):  # roundrobin: both replicas, never the primary
        with psycopg.connect(ro_dsn, autocommit=True) as conn:
            port, in_recovery = where(conn)
            assert in_recovery and port != ports[old]
            reached.add(port)
            wait_for(lambda c=conn: c.execute("SELECT count(*) FROM through_haproxy").fetchone() == (1,),
                     what="the row written through rw, read through ro")
    assert reached == {ports[n] for n in ports if n != old}

    held_ro = None  # a read session on the replica about to be promoted: HAProxy must cut it once it leads
    while held_ro is None:
        conn = psycopg.connect(ro_dsn, autocommit=True)
        if where(conn)[0] == ports[target]:
            held_ro = conn
        else:
            conn.close()

    writer = Writer(rw_dsn).start()
    sampler = ReadSampler(ro_dsn).start()
    try:
        writer.wait_acks(20)
        started = time.monotonic()
        cluster.switchover(target)
        # within a bounded wait HAProxy follows: rw to the new primary, ro to the two replicas (the old
        # primary rejoined), and the read session on the new primary is shut down
        proxy.wait_servers("rw", {servers[target]}, timeout=30)
        proxy.wait_servers("ro", {servers[n] for n in ports if n != target}, timeout=60)
        settled = time.monotonic()
        writer.wait_acks(20)
        wait_for(lambda: sum(t > settled for t, _, _ in sampler.samples) >= 20,
                 what="20 reads through ro after HAProxy settled")
    finally:
        sampler.stop()
        writer.stop()
    after_settled = [s for s in sampler.samples if s[0] > settled]

    with pytest.raises(psycopg.OperationalError):
        held_ro.execute("SELECT 1")  # on-marked-down shutdown-sessions
    held_ro.close()
    with psycopg.connect(rw_dsn, autocommit=True) as conn:
        assert where(conn) == (ports[target], False)
        conn.execute("INSERT INTO through_haproxy VALUES ('written via rw after the switchover')")
    assert all(in_recovery for _, _, in_recovery in after_settled), after_settled
    assert {port for _, port, _ in after_settled} == {ports[n] for n in ports if n != target}
    assert writer.acked_ids() <= rows_on(cluster, target), "every write acknowledged through rw is on the new primary"

    gaps = [b - a for (_, a), (_, b) in zip(writer.acked, writer.acked[1:], strict=False) if b >= started]
    print(f"\nrw write outage through HAProxy: {max(gaps):.2f}s; HAProxy settled {settled - started:.2f}s "
          f"after the switchover request; ro errors while switching: {sampler.errors}")


def test_ro_never_routes_to_the_old_primary_and_stops_routing_to_the_new_one_once_marked_down(  # type: ignore[no-untyped-def]
    make_cluster, start_haproxy
) -> None:
    """Health checks cannot be instantaneous: after the promotion HAProxy keeps sending new ro sessions
    to the new primary until `fall 2` checks at `inter 1s` have failed. What must hold: the ro port
    never reaches the old primary while it is one, and no ro session reaches a primary after HAProxy
    marked it DOWN (the exposure is printed, a figure for docs/haproxy.md)."""
    cluster, proxy, t = switchover_setup(make_cluster, start_haproxy)
    ports, old, target, servers = t.ports, t.old, t.target, t.servers
    ro_dsn = cluster.port_dsn(proxy.ro_port)
    proxy.wait_servers("ro", {servers[n] for n in ports if n != old})

    sampler = ReadSampler(ro_dsn).start()
    marked_down: list[float] = []
    try:
        wait_for(lambda: len(sampler.samples) >= 10, what="reads through ro before the switchover")
        started = time.monotonic()
        cluster.switchover(target)

        def target_down() -> bool:
            if proxy.servers("ro").get(servers[target]) == "DOWN":
                marked_down.append(time.monotonic())
                return True
            return False

        wait_for(target_down, timeout=30, interval=0.02, what="HAProxy marks the new primary DOWN in ro")
        proxy.wait_servers("ro", {servers[n] for n in ports if n != target}, timeout=60)
        count = len(sampler.samples)
        wait_for(lambda: len(sampler.samples) >= count + 20, what="20 more reads through ro")
    finally:
        sampler.stop()
    on_primary = [(t, port) for t, port, in_recovery in sampler.samples if not in_recovery]
    assert all(port == ports[target] for _, port in on_primary), f"ro reached the old primary: {on_primary}"
    assert all(t < marked_down[0] for t, _ in on_primary), "a ro session begun after HAProxy marked the new " \
        "primary DOWN reached it"
    exposure = (on_primary[-1][0] - on_primary[0][0]) if on_primary else 0.0
    print(f"\nro sessions on the new primary before HAProxy marked it DOWN: {len(on_primary)} over {exposure:.2f}s; "
          f"marked DOWN {marked_down[0] - started:.2f}s after the switchover request")

