"""Operator-level cluster values: maintenance mode (pause), the membership after a scaling, the history of primaries.

Both live in the store's versioned values (pgkeel.dcs.DCS.set_value), so any node's API can
change or read them and every agent sees the same thing on its next loop. Writes are a
compare-and-swap retried on a lost race: two operators pausing at once both succeed, the
last one's expiry wins, and no other key of the `config` value is lost.
"""

from __future__ import annotations

from typing import Any

from pgkeel.dcs import DCS, DCSError
from pgkeel.ha.records import HistoryEvent, Membership, Pause, decode_events

ATTEMPTS = 5


def _update_config(dcs: DCS, change: dict[str, Any]) -> dict[str, Any]:
    """Merge `change` into the `config` value (a None value removes its key); the new value."""
    for _ in range(ATTEMPTS):
        current = dcs.view().values.get("config")
        value = dict(current.value) if current else {}
        for key, item in change.items():
            if item is None:
                value.pop(key, None)
            else:
                value[key] = item
        if dcs.set_value("config", value, current.version if current else 0):
            return value
    raise DCSError("the cluster's config value kept changing while it was written; try again")


def set_pause(dcs: DCS, pause: Pause) -> Pause:
    """Enter (or extend) maintenance mode: from the next loop no agent fails over automatically."""
    _update_config(dcs, {"pause": pause.to_json()})
    return pause


def clear_pause(dcs: DCS) -> bool:
    """Leave maintenance mode; False when the cluster was not paused."""
    current = dcs.view().values.get("config")
    was_paused = current is not None and Pause.from_config(current.value) is not None
    _update_config(dcs, {"pause": None})
    return was_paused


def set_membership(dcs: DCS, membership: Membership) -> Membership:
    """Record who the members are (a scaling): every agent takes it from its next loop."""
    _update_config(dcs, {"membership": membership.to_json()})
    return membership


def read_membership(dcs: DCS) -> Membership | None:
    current = dcs.view().values.get("config")
    return Membership.from_config(current.value) if current else None


def read_pause(dcs: DCS) -> Pause | None:
    current = dcs.view().values.get("config")
    return Pause.from_config(current.value) if current else None


def read_events(dcs: DCS) -> list[HistoryEvent]:
    """Every recorded change of primary, oldest first."""
    current = dcs.view().values.get("events")
    return decode_events(current.value) if current else []
