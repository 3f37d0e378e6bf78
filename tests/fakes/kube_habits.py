"""How a loaded API server answers: latency with a long tail and periodic spikes, and 429s with Retry-After.

The Kubernetes SLO for single-object mutating calls is p99 ≤ 1 s per cluster-day
(sig-scalability/slos), and etcd leader elections, defragmentation and priority-and-fairness
queueing stall the whole server for seconds. The fake answers in well under a millisecond, so
without this no test ever sees a late renewal. Only *when* the server answers changes here, never
*what* it answers: the store's semantics (CAS, 409s, watches) stay the fake's.

Invariant: the profile is seeded, so a run's delays repeat (apart from thread scheduling): the
draw is by request count, the spikes by time since the profile began.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class LatencyProfile:
    """Most requests take ~`base`; `tail` of them (1 %) take up to `p99`; every `spike_every` seconds, for
    `spike` seconds, every request waits `spike` seconds (an etcd leader election, an apiserver stall)."""

    base: float = 0.02
    p99: float = 1.0
    spike_every: float = 30.0
    spike: float = 3.0
    tail: float = 0.01
    seed: int = 16
    first_spike: float | None = None  # seconds after the start; None: one spike_every in
    began: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def in_spike(self, now: float) -> bool:
        if self.spike_every <= 0 or self.spike <= 0:
            return False
        first = self.spike_every if self.first_spike is None else self.first_spike
        since = now - self.began - first
        return since >= 0 and since % self.spike_every < self.spike

    def draw(self, now: float) -> float:
        """The delay of one request arriving at `now` (monotonic)."""
        if self.in_spike(now):
            return self.spike
        with self._lock:  # one generator for all handler threads
            roll, jitter, tail = self._random.random(), self._random.random(), self._random.random()
        if roll < self.tail:
            return self.base + tail * max(0.0, self.p99 - self.base)
        return self.base * (0.5 + jitter)


class Habits:
    """The fake's load behaviour: an optional latency profile, a count of 429s to give, what requests took."""

    retry_after = 1  # seconds, as the API server's APF rejection says

    def __init__(self) -> None:
        self.profile: LatencyProfile | None = None
        self._throttle = 0
        self._lock = threading.Lock()
        self.durations: list[float] = []  # seconds each answered request took in the server, delay included
        self.throttled = 0  # 429s given

    @contextlib.contextmanager
    def latency(self, profile: LatencyProfile) -> Iterator[LatencyProfile]:
        self.profile = profile
        try:
            yield profile
        finally:
            self.profile = None

    def throttle(self, n: int) -> None:
        with self._lock:
            self._throttle += n

    def take_throttle(self) -> bool:
        """Whether this request is one of the 429s asked for (each is given once)."""
        with self._lock:
            if self._throttle <= 0:
                return False
            self._throttle -= 1
            self.throttled += 1
            return True

    def delay(self, now: float) -> None:
        profile = self.profile
        if profile is not None:
            time.sleep(profile.draw(now))

    def seen(self, seconds: float) -> None:
        with self._lock:
            self.durations.append(seconds)

    def percentile(self, q: float) -> float:
        """The q-quantile (0..1) of request durations seen so far; 0 without any."""
        with self._lock:
            ordered = sorted(self.durations)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
