"""A rolling restart of a local cluster, carried out through the node APIs in the order of pgkeel.local.restart_order.

The agents restart their own postgres (POST /restart): this module only asks, one member at a time,
and waits until that member is back — a new postmaster, streaming (or leading) again — before the
next step. Every wait is bounded and reported as it goes; a member that does not come back is named
with the end of its postgres.log and agent.log, and nothing after it is restarted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from pgkeel.ha.status import NodeStatus, parse_status
from pgkeel.local.cluster import AgentExited, LocalCluster
from pgkeel.local.live_settings import read_pending, read_settings
from pgkeel.local.restart_order import MemberView, Step, StepKind, rolling_order, switchover_target
from pgkeel.pgconf.changes import STANDBY_FLOORS, FloorChange, floor_change, parse_conf

Say = Callable[[str], None]
# A snapshot of the loop that restarted postgres pairs the new postmaster's pid with what was observed
# before the restart (role, streaming, pending): only a later loop's snapshot tells that it is back.
RESTART_RULES = ("follow.restart-requested", "lead.restart-requested")


class RestartFailed(RuntimeError):
    """A step did not finish; the message names the member, what it showed and the end of its logs."""


@dataclass(frozen=True)
class StepDone:
    step: Step
    seconds: float
    note: str


class RollingRestart:
    def __init__(self, local: LocalCluster, say: Say, progress: Say, timeout: float = 120.0) -> None:
        self.local = local
        self.say = say  # a line that stays (one per step)
        self.progress = progress  # the spinner's text while waiting
        self.timeout = timeout  # per member
        self._announced_lsn: int | None = None  # the primary's position once it restarted with lowered values

    # --- what the order is decided from ---------------------------------------------------------------
    def statuses(self) -> dict[str, NodeStatus | None]:
        local = self.local
        return {n: parse_status(local.fetch(n)) for n in local.cluster().member_names()}

    def views(self) -> tuple[list[MemberView], str | None]:
        statuses = self.statuses()
        leader = next((s.leader for s in statuses.values() if s is not None and s.leader), None)
        views = [
            MemberView(name, s.role, s.postgres.streaming, self._pending(name, s), s.replay_lag_bytes)
            if s is not None else MemberView(name, "stopped", False, ())
            for name, s in statuses.items()
        ]
        return views, leader

    def _pending(self, name: str, status: NodeStatus) -> tuple[str, ...]:
        """From postgres itself: right after a reload the agent's /status may not list them yet."""
        try:
            return read_pending(self.local, name)
        except psycopg.Error:
            return tuple(status.pending_restart)

    def floors(self, leader: str) -> FloorChange:
        """The standby-floor parameters the files raise or lower against what the primary runs with now."""
        major = self.local.cluster().spec.postgres.version
        wanted = parse_conf((self.local.layout.etc / "postgresql.conf").read_text())
        try:
            live = read_settings(self.local, leader, list(STANDBY_FLOORS))
        except psycopg.Error as exc:
            raise RestartFailed(f"cannot read the primary {leader}'s settings: {exc}") from None
        values = {n: (row.setting, wanted.get(n, row.boot_val)) for n, row in live.items()}
        return floor_change(major, values)

    def plan(self, only: str | None = None, pending_only: bool = False) -> list[Step]:
        """The steps (OrderRefused when no safe order exists now; nothing restarted)."""
        views, leader = self.views()
        floors = self.floors(leader) if leader else FloorChange((), ())
        return rolling_order(views, leader, floors, only=only, pending_only=pending_only)

    # --- carrying it out ------------------------------------------------------------------------------
    def run(self, steps: list[Step]) -> list[StepDone]:
        done = []
        for number, step in enumerate(steps, 1):
            started = time.monotonic()
            self.progress(f"step {number}/{len(steps)}: {step.kind} {step.member}")
            note = self._step(step)
            result = StepDone(step, time.monotonic() - started, note)
            self.say(f"step {number}/{len(steps)}: {step.kind} {step.member}: {note} ({result.seconds:.1f} s)")
            done.append(result)
        return done

    def _step(self, step: Step) -> str:
        if step.kind is StepKind.SWITCHOVER:
            return self._switchover(step.member)
        status = self._status(step.member)
        if step.if_pending and not status.pending_restart:
            return "nothing pending: the switchover restarted it"
        old_pid = status.postgres.pid
        if step.kind is StepKind.RESTART_IN_PLACE:
            self.local.post_to(step.member, "/restart", {"in_place": True})
            back = self._wait_back(step.member, old_pid, "primary")
            self._announced_lsn = back.postgres.lsn
            return f"restarted in place, leading again (postmaster {back.postgres.pid})"
        if self._announced_lsn is not None:
            self._wait_replayed(step.member, self._announced_lsn)
        self.local.post_to(step.member, "/restart", {})
        back = self._wait_back(step.member, old_pid, "replica")
        return f"restarted, streaming again (postmaster {back.postgres.pid})" + _still_pending(back)

    def _switchover(self, leader: str) -> str:
        views, _ = self.views()
        target = switchover_target(views, leader)
        if target is None:
            raise RestartFailed(f"no streaming replica to hand {leader}'s primary role to; see `pgkeel status`")
        old_pid = self._status(leader).postgres.pid
        try:
            self.local.wait_for_leader(self.local.request_switchover(target), self.timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise RestartFailed(f"switchover {leader} → {target}: {exc}") from None
        back = self._wait_back(leader, old_pid, "replica")
        return f"{target} leads; {leader} is back as a streaming replica" + _still_pending(back)

    def _status(self, name: str) -> NodeStatus:
        status = parse_status(self.local.fetch(name))
        if status is None:
            raise RestartFailed(f"{name}: its agent does not answer on {self.local.api_url(name)}/status")
        return status

    def _wait_back(self, name: str, old_pid: int | None, role: str) -> NodeStatus:
        """Until `name` runs a new postmaster as `role`: the leader, or a replica that streams."""
        deadline = time.monotonic() + self.timeout
        seen = ""
        while True:
            try:
                self.local.check_agents_alive([name])
            except AgentExited as exc:
                raise RestartFailed(f"{exc}\n{self._postgres_tail(name)}") from None
            status = parse_status(self.local.fetch(name))
            if status is not None:
                pid = status.postgres.pid
                ready = status.is_leader if role == "primary" else status.postgres.streaming
                fresh = status.rule not in RESTART_RULES
                if pid is not None and pid != old_pid and status.role == role and ready and fresh:
                    return status
                seen = f"{status.role}/{status.state}, postmaster {pid or 'none'}"
            else:
                seen = "its agent does not answer"
            self.progress(f"waiting for {name}: {seen}")
            if time.monotonic() > deadline:
                raise RestartFailed(
                    f"{name} is not back as a {'leading primary' if role == 'primary' else 'streaming replica'} "
                    f"within {self.timeout:g} s (now {seen}); nothing after it was restarted.\n"
                    f"{self._postgres_tail(name)}\nthe end of {self.local.layout.node(name) / 'agent.log'}:\n"
                    f"{self.local.log_tail(name)}"
                )
            time.sleep(0.2)

    def _wait_replayed(self, name: str, lsn: int | None) -> None:
        """Lowered floors: this standby starts with the lower value only once it replayed the primary's announcement."""
        if lsn is None:
            return
        deadline = time.monotonic() + self.timeout
        while True:
            status = self._status(name)
            replayed = status.postgres.replay_lsn
            if replayed is not None and replayed >= lsn:
                return
            self.progress(f"waiting for {name} to replay the primary's restart ({replayed} < {lsn})")
            if time.monotonic() > deadline:
                raise RestartFailed(f"{name} did not replay the restarted primary's WAL within {self.timeout:g} s")
            time.sleep(0.2)

    def _postgres_tail(self, name: str) -> str:
        return f"the end of {self.local.layout.node(name) / 'postgres.log'}:\n{self.local.postgres_log_tail(name)}"


def _still_pending(status: NodeStatus) -> str:
    return f"; still pending: {', '.join(status.pending_restart)}" if status.pending_restart else ""
