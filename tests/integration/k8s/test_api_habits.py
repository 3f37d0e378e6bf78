"""Three agents and a writer against a fake API server that behaves like a real, loaded one.

A real API server meets its SLO with p99 ≤ 1 s for single-object writes and still stalls for
seconds on an etcd election; a control-plane upgrade takes it away for a minute. Neither may cost
a healthy primary its writes: latency inside the SLO must not fence or fail over (review A1), and
through an outage the failsafe keeps the primary serving while its peers promise not to lead.

The 10-minute run of the latency test is a benchmark: PGKEEL_BENCH_K8S_LATENCY=600 (seconds).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_roll_kubernetes import NS, PodCluster, Writer, healthy, wait_for

from pgkeel.k8s import layout

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="agents drop to the postgres user: run as root"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/postgresql/15/bin/postgres"), reason="needs PostgreSQL 15"),
]

FENCE_LINE = re.compile(r"\] Fence\b|failsafe: .* did not promise")
BENCH_SECONDS = float(os.environ.get("PGKEEL_BENCH_K8S_LATENCY") or 0)
# ~3 minutes together: run on demand (PGKEEL_K8S_HABITS=1), outside make test's 30-minute budget
HABITS = pytest.mark.skipif(not os.environ.get("PGKEEL_K8S_HABITS"),
                            reason="on demand: PGKEEL_K8S_HABITS=1 (latency, a 60 s API outage, a crash; ~3 min)")


@dataclass
class LeaderWatch:
    """Samples the lease holder straight from the fake's store (no latency) every 50 ms: the leader changes."""

    cluster: PodCluster
    holders: list[tuple[float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            holder = self.cluster.lease_holder()
            if not self.holders or self.holders[-1][1] != holder:
                self.holders.append((time.monotonic(), holder))
            time.sleep(0.05)

    def stop(self) -> int:
        """The number of times the lease changed hands (or was left empty) after the first holder."""
        self._stop.set()
        self._thread.join(timeout=5)
        return len(self.holders) - 1


def transitions(cluster: PodCluster) -> int:
    lease = cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name)) or {}
    return int((lease.get("spec") or {}).get("leaseTransitions") or 0)


def fence_lines(cluster: PodCluster, offsets: dict[str, int]) -> list[str]:
    """Fences and failed failsafe rounds each agent logged since `offsets` (bytes into its agent.log)."""
    found = []
    for pod in cluster.names:
        text = Path(cluster.base / pod / "agent.log").read_bytes()[offsets.get(pod, 0):].decode(errors="replace")
        found += [f"{pod}: {line}" for line in text.splitlines() if FENCE_LINE.search(line)]
    return found


def log_offsets(cluster: PodCluster) -> dict[str, int]:
    return {pod: (cluster.base / pod / "agent.log").stat().st_size for pod in cluster.names}


def longest_gap(acked_at: list[float], start: float, end: float) -> float:
    """The longest time without an acknowledged write within [start, end]."""
    times = [start, *(t for t in acked_at if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(times))


def running(pod_cluster: Callable[..., PodCluster]) -> tuple[PodCluster, str, Writer]:
    """Three pods on the document's default timings, healthy, with a writer on the primary."""
    cluster = pod_cluster(failover=None)
    for pod in cluster.names:
        cluster.start(pod)
    leader = wait_for(lambda: healthy(cluster), 120, "a primary with two streaming replicas", cluster)
    writer = Writer(cluster)
    with writer.connect(leader) as conn:
        conn.execute("CREATE TABLE t (v int)")
    writer.start()
    wait_for(lambda: len(writer.acked) > 20, 30, "the writer's first writes", cluster)
    return cluster, leader, writer


def latency_run(pod_cluster: Callable[..., PodCluster], seconds: float, spike_every: float = 30.0) -> None:
    cluster, leader, writer = running(pod_cluster)
    watch, offsets, term = LeaderWatch(cluster), log_offsets(cluster), transitions(cluster)
    failures_before = writer.failures
    started = time.monotonic()
    # p99 at the SLO's 1 s, and a 3 s stall (an etcd leader election) every `spike_every` s, the first 8 s in.
    with cluster.api.latency(base=0.02, p99=1.0, spike_every=spike_every, spike=3.0, first_spike=8.0):
        start = time.monotonic()
        time.sleep(seconds)
        end = time.monotonic()
    changes = watch.stop()
    writer.stop()
    habits = cluster.api.habits
    fences = fence_lines(cluster, offsets)
    gap = longest_gap(writer.acked_at, start, end)
    refused = writer.failures - failures_before
    figures = (f"{seconds:.0f}s under latency: leader changes {changes}, lease transitions "
               f"{transitions(cluster) - term}, fences {len(fences)}, refused writes {refused}, "
               f"longest write gap {gap:.2f}s, writes {len([t for t in writer.acked_at if start <= t <= end])}, "
               f"requests {len(habits.durations)} p50 {habits.percentile(0.5) * 1000:.0f}ms "
               f"p99 {habits.percentile(0.99) * 1000:.0f}ms max {max(habits.durations):.2f}s")
    print(figures)
    assert changes == 0 and transitions(cluster) == term, f"{figures}\n{cluster.logs()}"
    assert cluster.lease_holder() == leader
    assert not fences, "\n".join(fences)
    assert writer.failures == failures_before, f"{figures}: {[(round(t - started, 1), e) for t, e in writer.errors]}"
    assert gap < 5.0, figures  # a 3 s stall may delay a commit (sync replication), never stop writes


@HABITS
def test_latency_inside_the_slo_and_spikes_cost_no_failover(pod_cluster: Callable[..., PodCluster]) -> None:
    latency_run(pod_cluster, 38.0, spike_every=12.0)  # three 3 s stalls; the benchmark runs 10 minutes


@pytest.mark.skipif(not BENCH_SECONDS, reason="benchmark: set PGKEEL_BENCH_K8S_LATENCY=600 (seconds)")
def test_bench_latency_long(pod_cluster: Callable[..., PodCluster]) -> None:
    latency_run(pod_cluster, BENCH_SECONDS)


@HABITS
def test_a_minute_without_the_api_costs_no_writes(pod_cluster: Callable[..., PodCluster]) -> None:
    cluster, leader, writer = running(pod_cluster)
    watch, offsets, term = LeaderWatch(cluster), log_offsets(cluster), transitions(cluster)
    renewed = (cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name)) or {})["spec"]["renewTime"]
    with cluster.api.outage("hang"):
        start = time.monotonic()
        time.sleep(60.0)
        end = time.monotonic()
        assert (cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name)) or {})["spec"]["renewTime"] == renewed
    gap = longest_gap(writer.acked_at, start, end)

    def renewed_again() -> bool:
        lease = cluster.api.lease(NS, layout.leader_lease(cluster.cluster.name)) or {}
        return bool(lease["spec"]["renewTime"] != renewed and lease["spec"]["holderIdentity"] == leader)

    wait_for(renewed_again, 20, "the same primary renewing after the outage", cluster)
    back = time.monotonic()
    time.sleep(3.0)
    changes = watch.stop()
    writer.stop()
    after = longest_gap(writer.acked_at, back, time.monotonic())
    fences = fence_lines(cluster, offsets)
    refused = [(round(t - start, 1), e) for t, e in writer.errors if t >= start]
    figures = (f"60s API outage: longest write gap {gap:.2f}s during, {after:.2f}s after, leader changes {changes}, "
               f"lease transitions {transitions(cluster) - term}, refused writes {len(refused)}, fences {len(fences)}")
    print(figures, refused[:5])
    # The lease ran out during the minute: the primary that kept serving reclaims it (a new term, same holder).
    assert changes == 0 and transitions(cluster) <= term + 1 and cluster.lease_holder() == leader, figures
    assert not fences and not refused, f"{figures}: {fences} {refused}"
    assert gap < 2.0, f"{figures}\n{cluster.logs()}"
    assert after < 2.0, figures


@HABITS
def test_a_crashed_primary_is_replaced_after_its_lease_and_promptly_on_the_kubernetes_timings(
    pod_cluster: Callable[..., PodCluster],
) -> None:
    """The longer Kubernetes timings still fail over promptly: about ttl (9 s) + two loops + the promotion."""
    cluster, leader, writer = running(pod_cluster)
    writer.stop()
    pg_pid = cluster.postgres_pid(leader)
    assert pg_pid is not None
    os.kill(cluster.procs[leader].pid, signal.SIGKILL)  # the node goes: agent and postgres, no goodbye
    os.killpg(os.getpgid(pg_pid), signal.SIGKILL)
    cluster.procs[leader].wait(timeout=10)
    killed_at = time.monotonic()

    def new_primary() -> str | None:
        holder = cluster.lease_holder()
        status = cluster.status(holder) if holder not in (None, leader) else None
        return holder if status is not None and status.get("role") == "primary" else None

    successor = wait_for(new_primary, 60, "a new primary", cluster)
    elapsed = time.monotonic() - killed_at
    print(f"failover after a crash on the Kubernetes defaults: {successor} primary {elapsed:.1f}s after")
    # never before the 9 s lease could have run out; the figure (11.3 s here) is printed, the bound is loose
    assert 9.0 * 0.9 <= elapsed <= 30.0, f"{elapsed:.1f}s\n{cluster.logs()}"
