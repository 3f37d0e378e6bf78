"""Polls every node's /status every 50 ms from the host: the timeline detection and promotion come from."""

from __future__ import annotations

import threading
import time

from pgkeel.lab.checks import Sample
from pgkeel.lab.cluster import LabCluster


class Monitor:
    def __init__(self, lab: LabCluster, period: float = 0.05) -> None:
        self.lab = lab
        self.period = period
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(name,), name=f"lab-monitor-{name}", daemon=True)
            for name in lab.names
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> list[Sample]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        return sorted(self.samples, key=lambda s: s.t)

    def _poll(self, name: str) -> None:
        while not self._stop.is_set():
            snap = self.lab.fetch(name, timeout=0.3)
            t = time.monotonic()
            if snap is None:
                self.samples.append(Sample(t, name, None, False, None, False))
            else:
                pg = snap.get("postgres") or {}
                self.samples.append(
                    Sample(
                        t,
                        name,
                        snap.get("role"),
                        bool(snap.get("is_leader")),
                        snap.get("leader"),
                        bool(pg.get("streaming")),
                        bool(snap.get("dcs_ok", True)),
                    )
                )
            self._stop.wait(self.period)

    def promoted(self, old_primary: str, since: float) -> str | None:
        for s in list(self.samples):
            if s.t > since and s.node != old_primary and s.role == "primary" and s.is_leader:
                return s.node
        return None

    def wait_promoted(self, old_primary: str, since: float, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = self.promoted(old_primary, since)
            if node:
                return node
            time.sleep(0.05)
        return None
