"""Failsafe: a primary keeps serving through a store outage while every other member promises not to lead.

The rule (pgkeel.ha.plan_global.failsafe_due) runs on the primary when the store cannot be read:
it asks every other configured member, over their APIs, to promise not to take the lease for one
ttl from the moment the request arrives. Only when *all* of them promise does the primary extend
its fence, to sent + fence_deadline — the same arithmetic as a store renewal: each promise lasts
until at least sent + ttl, so the fence lapses before any promise does.

Why every member and not a majority: taking the lease needs only the store, so a member that did
not promise (dead, cut off, never asked) could reach the store and lead, and nothing a majority
promised would stop it. Why it is safe: a member that promised refuses every acquisition until
its promise ends (the executor checks under the same lock that grants promises, so a promise and
an acquisition cannot cross), and a member that leads, is acquiring, runs a primary, or last saw a
different leader refuses to promise. A promise survives an agent restart (a file), and after a
reboot the agent keeps one full ttl, so a restarted member cannot lead on a promise it forgot.

`refusal` is pure; `Promises` is the small thread-safe state the API handler and the executor share.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pgkeel.ha.records import ClusterState

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Promise:
    leader: str
    until: float  # this node's boot clock (pgkeel.ha.clock)


def refusal(
    *,
    me: str,
    leader: str,
    members: tuple[str, ...],
    view: ClusterState | None,
    holding: bool,
    acting_primary: bool,
    acquiring: bool,
    remembered: Promise | None = None,
) -> str | None:
    """Why this node must not promise `leader` that it will not lead; None: it may promise.

    `view` is this node's last successful read of the store (which may be older than the outage).
    An agent restarted during the outage has none yet: the promise it made before (its file) names the
    leader it saw then, and nobody can have led since without this node's knowledge but through the
    store, which it could not read either. With neither it cannot know who led and refuses."""
    if leader == me:
        return "a node does not promise itself"
    if leader not in members:
        return f"{leader} is not a member of this cluster"
    if acquiring:
        return "this node is taking the lease right now"
    if holding:
        return "this node holds the lease"
    if acting_primary:
        return "this node runs as a primary"
    if view is None and remembered is None:
        return "this node has not read the store since it started: it cannot tell who leads"
    if view is None:
        assert remembered is not None
        last: str | None = remembered.leader
    else:
        last = view.leader_name
        if last is None and view.history is not None:
            last = view.history.leader
    if last != leader:
        return f"the last leader this node saw is {last or 'nobody'}, not {leader}"
    return None


class Promises:
    """This node's promise not to lead, and whether it is acquiring or holding the lease.

    One lock orders a grant against an acquisition: `acquisition()` refuses while a promise is
    active and makes `grant` refuse until the acquisition is over."""

    def __init__(self, path: Path | None, ttl: float, now: float) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._ttl = ttl
        self._acquiring = False
        self.holding = False  # set by the executor on every lease success, cleared when the lease is given up
        self.remembered: Promise | None = None  # the promise found in the file at start, even if over
        self._promise = self._load(now)

    @property
    def promise(self) -> Promise | None:
        with self._lock:
            return self._promise

    def active_until(self, now: float) -> float | None:
        with self._lock:
            p = self._promise
            return p.until if p is not None and now < p.until else None

    def grant(self, leader: str, now: float, why_not: str | None) -> Promise:
        """Promise `leader` (one ttl from now) unless `why_not` or the node is acquiring; ValueError names why."""
        with self._lock:
            if self._acquiring:
                why_not = why_not or "this node is taking the lease right now"
            if why_not is not None:
                raise ValueError(why_not)
            until = now + self._ttl
            if self._promise is not None and self._promise.leader == leader:
                until = max(until, self._promise.until)
            self._promise = Promise(leader, until)
            self._save(self._promise)
            return self._promise

    @contextlib.contextmanager
    def acquisition(self, now: float) -> Iterator[str | None]:
        """Around a lease acquisition: yields why it must not be sent (an active promise), else None."""
        with self._lock:
            p = self._promise
            if p is not None and now < p.until:
                yield f"promised {p.leader} not to lead for {p.until - now:.1f}s more (store outage failsafe)"
                return
            self._acquiring = True
        try:
            yield None
        finally:
            with self._lock:
                self._acquiring = False

    # --- persistence: a restarted agent must not forget what it promised ----------------------------
    def _save(self, promise: Promise) -> None:
        if self._path is None:
            return
        data = json.dumps({"leader": promise.leader, "until": promise.until, "boot_id": _boot_id()})
        tmp = self._path.with_name(self._path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)

    def _load(self, now: float) -> Promise | None:
        if self._path is None:
            return None
        try:
            data = json.loads(self._path.read_text())
            leader, until, boot = str(data["leader"]), float(data["until"]), str(data["boot_id"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if boot != _boot_id():  # rebooted: the boot clock started again, so keep one full ttl from now
            until = now + self._ttl
        self.remembered = Promise(leader, until)
        return self.remembered if now < until else None


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""
