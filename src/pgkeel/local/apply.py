"""`pgkeel apply`: another document on a running local cluster — the diff first, then the files, a reload
on every member, and a check that each member's postgres took the new values.

Nothing is written until every check passed: the document is valid, names the same cluster (metadata.name,
spec.instances, major version), and does not raise some standby-floor parameters while lowering others.
The diff is of the rendered postgresql.conf (old file vs new render), so tuned values that follow from a
changed field show up too. Restart-only values are reported pending; `--restart` restarts in rolling order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pgkeel.document import PostgresCluster, SpecError, load_cluster
from pgkeel.ha.config import AgentConfig
from pgkeel.local import stored_document
from pgkeel.local.cluster import LocalCluster
from pgkeel.local.live_settings import LiveSetting, read_settings
from pgkeel.local.scaling import Scaling, plan_scaling
from pgkeel.pgconf import load_catalogue, render_config
from pgkeel.pgconf.changes import (
    STANDBY_FLOORS,
    FloorChange,
    ParameterChange,
    diff_settings,
    floor_change,
    matches_setting,
    mixed_floor_error,
    parse_conf,
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class ApplyPlan:
    document: Path
    cluster: PostgresCluster
    changes: list[ParameterChange]
    hba_changed: bool
    floors: FloorChange
    agent_fields: list[str]  # agent settings that differ: read when the agents start
    document_changed: bool
    scaling: Scaling | None = None  # other members (spec.instances): pgkeel.local.scaling

    @property
    def restarts(self) -> list[ParameterChange]:
        return [c for c in self.changes if c.change == "restart"]

    @property
    def nothing(self) -> bool:
        return not (self.changes or self.hba_changed or self.document_changed)


@dataclass
class MemberApplied:
    """One member after the reload: what it runs with, what waits for a restart, what it did not take."""

    name: str
    reloaded: bool
    applied: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def refuse_unsupported(current: PostgresCluster, new: PostgresCluster) -> None:
    """ValueError for what apply cannot change on a running cluster, naming the field and what to keep."""
    if new.name != current.name:
        raise ValueError(
            f"metadata.name: {current.name} → {new.name}: a running cluster keeps its name; keep metadata.name: "
            f"{current.name} (a new name is a new cluster: another --dir)"
        )


def plan_apply(local: LocalCluster, document: Path) -> ApplyPlan:
    """Everything apply would do, computed without writing anything (ValueError / ConfigError when refused)."""
    lay = local.layout
    new = load_cluster(document)
    try:
        current: PostgresCluster | None = local.cluster()
    except SpecError:
        current = None  # the stored copy was edited into something invalid: the member names still guard below
    if current is not None:
        refuse_unsupported(current, new)
    scaling = plan_scaling(current, new) if current is not None else None
    stored_document.check_carried_out(lay, new, scaling=scaling is not None)
    major = new.spec.postgres.version
    rendered = render_config(new, config_dir=str(lay.etc))
    old_conf = _read(lay.etc / "postgresql.conf")
    changes = diff_settings(major, parse_conf(old_conf), parse_conf(rendered.postgresql_conf))
    floors = floor_change(major, {c.name: (c.old, c.new) for c in changes if c.name in STANDBY_FLOORS})
    if floors.mixed:
        raise ValueError(mixed_floor_error(floors))
    agent_fields = []
    if current is not None:
        before, after = AgentConfig.document_fields(current), AgentConfig.document_fields(new)
        agent_fields = sorted(k for k in after if after[k] != before[k])  # type: ignore[literal-required]
    plan = ApplyPlan(
        document=document,
        cluster=new,
        changes=changes,
        hba_changed=_read(lay.etc / "pg_hba.conf") != rendered.pg_hba_conf,
        floors=floors,
        agent_fields=agent_fields,
        document_changed=current != new,
        scaling=scaling,
    )
    if scaling is not None and (plan.changes or plan.hba_changed):
        changed = ", ".join([c.name for c in plan.changes] + (["pg_hba.conf"] if plan.hba_changed else []))
        raise ValueError(
            f"spec.instances: {len(scaling.before)} → {len(scaling.after)} together with other changes ({changed}): "
            "scale alone; apply the other changes first, then change spec.instances"
        )
    return plan


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def carry_out(local: LocalCluster, plan: ApplyPlan, progress: Say, timeout: float = 30.0) -> list[MemberApplied]:
    """Write the document and files, reload every running member, and wait until each one's postgres shows
    the new values (or pending_restart for restart-only ones)."""
    local.prepare(plan.document, apply=True)
    results = []
    for name in local.cluster().member_names():
        if local.agent_pid(name) is None:
            results.append(MemberApplied(name, False, problems=["not running: takes the files when it starts"]))
            continue
        answer = local.post_to(name, "/reload", {})
        results.append(MemberApplied(name, bool(answer.get("reloaded"))))
    deadline = time.monotonic() + timeout
    for result in results:
        if result.reloaded:
            _wait_applied(local, plan, result, deadline, progress)
    return results


def _wait_applied(local: LocalCluster, plan: ApplyPlan, result: MemberApplied, deadline: float, progress: Say) -> None:
    names = [c.name for c in plan.changes]
    while True:
        try:
            live = read_settings(local, result.name, names) if names else {}
            checked = [check_change(plan.cluster.spec.postgres.version, c, live.get(c.name)) for c in plan.changes]
        except psycopg.Error as exc:
            checked = [("problem", f"cannot read pg_settings: {exc}".strip())]
        verdicts = list(zip(plan.changes, [verdict for verdict, _ in checked], strict=False))
        result.applied = [c.name for c, verdict in verdicts if verdict == "applied"]
        result.pending = [c.name for c, verdict in verdicts if verdict == "pending"]
        result.problems = [text for verdict, text in checked if verdict == "problem"]
        if not result.problems:
            return
        if time.monotonic() > deadline:
            result.problems = [f"{p} (after the reload)" for p in result.problems]
            return
        progress(f"waiting for {result.name} to take the new values: {result.problems[0]}")
        time.sleep(0.2)


def check_change(major: int, change: ParameterChange, live: LiveSetting | None) -> tuple[str, str]:
    """("applied" | "pending" | "problem", detail) for one changed parameter as a member's pg_settings shows it."""
    if live is None:
        return "applied", "not in pg_settings (an extension's parameter before its library loads)"
    if live.source in ("command line", "override"):  # the agent's -c settings win over the file
        return "applied", f"{change.name} is set on postgres' command line by the agent; the file's value is not used"
    if change.change == "restart" and live.pending_restart:
        return "pending", ""
    guc = load_catalogue(major).get(change.name)
    if change.new is None:
        taken = live.source != "configuration file"
    elif guc is None:
        taken = live.setting == change.new
    else:
        taken = matches_setting(guc, change.new, live.setting)
    if taken:
        return "applied", ""
    return "problem", f"{change.name} shows {live.setting} (source {live.source}), not {change.shown_new}"
