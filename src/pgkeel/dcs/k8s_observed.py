"""Expiry on this process's clock: when each Kubernetes record was first seen in its present form.

The API server's timestamps are other machines' wall clocks; like client-go's leader election
(observedTime), the store judges a record live until it has stayed unchanged, as observed here on
the monotonic clock, for its duration. Our own writes count from just before they were sent.
"""

from __future__ import annotations

import threading
from typing import Any


class ObservedClock:
    """First-seen times by key, shared by the store's loop and the roll thread (hence the lock)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def observe(self, key: str, fingerprint: Any, at: float) -> float:
        with self._lock:
            previous = self._seen.get(key)
            if previous is None or previous[0] != fingerprint:
                self._seen[key] = (fingerprint, at)
                return at
            return previous[1]

    def wrote(self, key: str, fingerprint: Any, sent: float) -> None:
        with self._lock:
            self._seen[key] = (fingerprint, sent)

    def forget_members(self, keep: set[str]) -> None:
        with self._lock:
            for key in [k for k in self._seen if k.startswith("member/") and k[7:] not in keep]:
                del self._seen[key]
