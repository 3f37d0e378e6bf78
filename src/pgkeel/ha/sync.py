"""Quorum mode: keeping postgres' synchronous set and the store's record of it in a safe order (pure).

The store's SyncRecord R is what a future election relies on: hearing |R.members| − R.quorum + 1
of them proves a candidate holds every commit acknowledged under R. Postgres' setting P decides
which commits are acknowledged. R *covers* P when every commit acknowledged under P is on at
least R.quorum members of R (so any heard set meets it):

    covers(R, P)  ⟺  P.quorum − |P.members \\ R.members| ≥ R.quorum

Changing from (R_old, P_old) to a desired D, every (R, P) pair in effect on the way must be
covered. Store first is safe when covers(D, P_old); otherwise postgres moves first — to D when
covers(R_old, D), else to the union of both sets with a quorum that covers both — then the store
is written only after D.quorum members of D have flushed past the switch point, so commits
acknowledged under the old setting are provable under D.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from pgkeel.ha.actions import AnyAction, SetSyncNames, WriteSyncRecord
from pgkeel.ha.model import Observation
from pgkeel.ha.records import SyncRecord

_NAMES = re.compile(r"^ANY (\d+) \((.*)\)$")


@dataclass(frozen=True)
class SyncRule:
    """'ANY quorum (members)'."""

    members: tuple[str, ...]
    quorum: int

    def render(self) -> str:
        if not self.members or self.quorum <= 0:
            return ""
        return f"ANY {self.quorum} (" + ",".join(f'"{m}"' for m in self.members) + ")"

    @classmethod
    def parse(cls, text: str | None) -> SyncRule | None:
        return _parse(text or "")


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> SyncRule | None:
    """Parsed once per distinct setting: the rule is immutable, and the loop (and the simulator, every
    step) reads the same few settings over and over."""
    match = _NAMES.match(text.strip())
    if not match:
        return None
    names = tuple(n.strip().strip('"') for n in match.group(2).split(",") if n.strip())
    return SyncRule(names, int(match.group(1)))


def covers(record: SyncRecord | SyncRule, rule: SyncRule | None) -> bool:
    """Every commit acknowledged under `rule` is on at least record.quorum members of `record`."""
    if rule is None:
        return False
    outside = len(set(rule.members) - set(record.members))
    return rule.quorum - outside >= record.quorum


def desired_rule(o: Observation) -> SyncRule:
    """ANY k of the other members, leaving out those tagged noSync or noFailover (HASettings.sync_excluded);
    the document guarantees k of them remain."""
    members = tuple(m for m in o.others if m not in o.settings.sync_excluded)
    return SyncRule(members, min(o.settings.sync_standbys, len(members)))


def sync_names(o: Observation) -> str:
    """What every node writes into postgres: its own future rule as a leader ('' in async mode)."""
    if o.settings.mode != "quorum":
        return ""
    return desired_rule(o).render()


def _covered_by_both(old: SyncRecord, new: SyncRule, members: tuple[str, ...]) -> SyncRule | None:
    """ANY q over `members`, q the least both cover (q − |members \\ R| ≥ R.quorum for each); None if none fits."""
    quorum = _least_quorum(old, new, members)
    return SyncRule(members, quorum) if 1 <= quorum <= len(members) else None


def _least_quorum(old: SyncRecord, new: SyncRule, members: tuple[str, ...]) -> int:
    return max(old.quorum + len(set(members) - set(old.members)), new.quorum + len(set(members) - set(new.members)))


def bridge(old: SyncRecord, new: SyncRule, connected: frozenset[str] = frozenset()) -> SyncRule:
    """A postgres rule covered by both the old record and the new one: over the new members, or the old ones,
    whichever the standbys connected now can meet (a scaling: a removed pod is gone, a new one still clones,
    and commits must not wait for either), else over their union with the quorum raised."""
    union = tuple(sorted(set(old.members) | set(new.members)))
    for members in (new.members, old.members):
        rule = _covered_by_both(old, new, members)
        if rule is not None and len(set(members) & connected) >= rule.quorum:
            return rule
    # as before: over the union (capped, for a record whose quorum exceeds its set)
    return SyncRule(union, min(_least_quorum(old, new, union), len(union)))


def flushed_past(o: Observation, want: SyncRule, switch_lsn: int) -> bool:
    """want.quorum members of the new set flushed past the switch point: older commits are provable under it."""
    done = {r.name for r in o.pg.replication if r.flush_lsn is not None and r.flush_lsn >= switch_lsn}
    return len(done & set(want.members)) >= want.quorum


def sync_plan(o: Observation) -> list[AnyAction]:
    """The leader's next step toward 'store and postgres both say D', never leaving a commit unprovable."""
    if o.settings.mode != "quorum" or o.cluster is None:
        return []
    want = desired_rule(o)
    target = SyncRecord(o.me, want.members, want.quorum)
    record = o.cluster.sync
    current = SyncRule.parse(o.pg.sync_standby_names)
    standby = bool(o.pg.in_recovery)
    write = WriteSyncRecord(record=target, expected_version=o.cluster.sync_version, reason="publish the quorum rule")
    set_names = SetSyncNames(names=want.render(), standby=standby, reason="synchronous set for the quorum rule")
    if record is None or record.leader != o.me:
        # A new leader, still before (or at) its first commit: the CAS on the version fences a stale candidate.
        return [write, *([] if current == want else [set_names])]
    if target.same_rule(record):
        return [] if current == want else [set_names]
    switch = o.memory.sync_switch
    if switch is not None and current == SyncRule(switch.members, switch.quorum) and covers(target, current):
        if flushed_past(o, want, switch.switch_lsn):
            return [write, *([] if current == want else [set_names])]
        return []  # postgres moved first: wait until the new set confirms the switch point
    if covers(target, current):
        return [write, *([] if current == want else [set_names])]
    connected = frozenset(r.name for r in o.pg.replication if r.flush_lsn is not None)
    step = want if covers(record, want) else bridge(record, want, connected)
    return [SetSyncNames(names=step.render(), standby=standby, reason="weaker proof ahead: change postgres first")]
