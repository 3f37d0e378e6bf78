"""The one clock the agent's lease and fence arithmetic uses.

CLOCK_BOOTTIME, not CLOCK_MONOTONIC: monotonic time stops while a machine is suspended, but the
store's TTL keeps running on the other machines, and pgkeel_fence inside postgres reads boottime too.
"""

from __future__ import annotations

import time


def now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)
