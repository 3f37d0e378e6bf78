"""Resource tuning: what a careful DBA would set for this container's CPU, memory, volume and workload.

Baseline: pgtune's published formulas and Spilo's container-memory rules. Where containers differ
from the machines pgtune assumes, we do better:
- PostgreSQL sees the host's cores, not the CPU quota, so parallelism follows `resources.cpu`;
- the memory limit is a hard OOM line that also holds the page cache, so connections scale with
  memory (Spilo-like) and work_mem is budgeted after shared_buffers *and* the autovacuum workers'
  maintenance memory, which all may be in use at once;
- the volume is finite and WAL can fill it: the WAL sizes share at most half of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pgkeel.document import PostgresCluster
from pgkeel.pgconf.values import format_bytes_for, human_bytes

MiB = 2**20
GiB = 2**30
# pgtune's per-workload connection counts and WAL sizes (web/oltp/dw/mixed).
WORKLOAD_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "mixed": 100}
WORKLOAD_MAX_WAL = {"web": 4 * GiB, "oltp": 8 * GiB, "dw": 16 * GiB, "mixed": 4 * GiB}
MEMORY_PER_CONNECTION = 32 * MiB  # one connection per 32Mi of limit, then capped by the workload's count
MIN_CONNECTIONS = 25
AUTOVACUUM_WORKERS = 3  # PostgreSQL's default autovacuum_max_workers
WAL_SEGMENT = 16 * MiB
WAL_BUDGET_SHARE = 0.5  # min_wal_size + max_wal_size + wal_keep_size + max_slot_wal_keep_size ≤ half the volume
WAL_SIZES = ("min_wal_size", "max_wal_size", "wal_keep_size", "max_slot_wal_keep_size")


@dataclass(frozen=True)
class Tuned:
    """One parameter pgkeel chooses; `reason` shows the formula with its numbers."""

    name: str
    value: str
    source: str  # "tuned" | "default"
    reason: str


@dataclass(frozen=True)
class Inputs:
    """The numbers tuning depends on, read once from the document (and user overrides that feed formulas)."""

    cpu_millis: int
    memory: int
    memory_text: str
    volume: int
    volume_text: str
    ssd: bool
    workload: str
    max_connections: int | None = None  # the user's, when given
    shared_buffers: int | None = None  # bytes, the user's, when given
    archive_backlog: int = 0  # bytes: spec.backup.archive's bound on WAL waiting for the archive (0: no archive)

    @property
    def cores(self) -> int:
        return max(1, math.ceil(self.cpu_millis / 1000))


def inputs_for(
    cluster: PostgresCluster, max_connections: int | None = None, shared_buffers: int | None = None
) -> Inputs:
    spec = cluster.spec
    return Inputs(
        cpu_millis=spec.resources.cpu_millis,
        memory=spec.resources.memory_bytes,
        memory_text=spec.resources.memory,
        volume=spec.storage.size_bytes,
        volume_text=spec.storage.size,
        ssd=spec.storage.kind == "ssd",
        workload=spec.workload,
        max_connections=max_connections,
        shared_buffers=shared_buffers,
        archive_backlog=spec.archive_backlog_bytes,
    )


def _mb(n: int) -> int:
    """Round down to whole MiB: every size we choose is a whole number of megabytes."""
    return (n // MiB) * MiB


def tune(inp: Inputs) -> list[Tuned]:
    """Every tuned parameter, in the order they appear in postgresql.conf."""
    out: list[Tuned] = []
    out += _memory(inp)
    out += _parallelism(inp)
    out += _storage(inp)
    out += wal_budget(inp)
    out += _checkpoints(inp)
    return out


def shared_buffers_bytes(inp: Inputs) -> int:
    return inp.shared_buffers if inp.shared_buffers is not None else _mb(inp.memory // 4)


def connections(inp: Inputs) -> tuple[int, str]:
    cap = WORKLOAD_CONNECTIONS[inp.workload]
    by_memory = inp.memory // MEMORY_PER_CONNECTION
    value = min(cap, max(MIN_CONNECTIONS, by_memory))
    reason = (
        f"one per 32Mi of {inp.memory_text} memory limit = {by_memory}, at least {MIN_CONNECTIONS}, "
        f"at most {cap} for {inp.workload} (pgtune) = {value}"
    )
    return value, reason


def maintenance_bytes(inp: Inputs) -> tuple[int, str]:
    share = 8 if inp.workload == "dw" else 16
    value = min(2 * GiB, _mb(inp.memory // share))
    return value, f"1/{share} of {inp.memory_text} memory limit, at most 2GB (pgtune) = {human_bytes(value)}"


def _memory(inp: Inputs) -> list[Tuned]:
    out: list[Tuned] = []
    # Dependent formulas use the user's shared_buffers/max_connections when given (they override ours).
    sb = shared_buffers_bytes(inp)
    ours = _mb(inp.memory // 4)
    out.append(Tuned("shared_buffers", format_bytes_for("8kB", ours), "tuned",
                     f"25% of {inp.memory_text} memory limit = {human_bytes(ours)} (pgtune, Spilo)"))
    ecs = _mb(inp.memory * 3 // 4)
    out.append(Tuned("effective_cache_size", format_bytes_for("8kB", ecs), "tuned",
                     f"75% of {inp.memory_text} memory limit = {human_bytes(ecs)}: shared_buffers plus the page "
                     "cache the container's limit can hold (pgtune)"))
    conns, reason = connections(inp)
    out.append(Tuned("max_connections", str(conns), "tuned", reason))
    if inp.max_connections is not None:
        conns = inp.max_connections
    mwm, mwm_reason = maintenance_bytes(inp)
    out.append(Tuned("maintenance_work_mem", format_bytes_for("kB", mwm), "tuned", mwm_reason))
    per_gather = _per_gather(inp)
    divisor = 2 if inp.workload in ("dw", "mixed") else 1
    free = max(0, inp.memory - sb - AUTOVACUUM_WORKERS * mwm)
    wm = max(64 * 1024, free // (conns * 3) // max(1, per_gather) // divisor)
    wm = (wm // 1024) * 1024
    out.append(Tuned(
        "work_mem", format_bytes_for("kB", wm), "tuned",
        f"({inp.memory_text} limit - {human_bytes(sb)} shared_buffers - {AUTOVACUUM_WORKERS} autovacuum workers × "
        f"{human_bytes(mwm)}) / ({conns} connections × 3) / {max(1, per_gather)} workers per gather"
        + (f" / 2 for {inp.workload}" if divisor == 2 else "") + f" = {human_bytes(wm)} (pgtune, container-aware)",
    ))
    wb = min(16 * MiB, sb * 3 // 100)
    wb_text = format_bytes_for("8kB", wb)
    out.append(Tuned("wal_buffers", wb_text, "tuned",
                     f"3% of {human_bytes(sb)} shared_buffers, at most one 16MB WAL segment = {wb_text} (pgtune)"))
    return out


def _per_gather(inp: Inputs) -> int:
    if inp.cores < 2:
        return 0
    half = inp.cores // 2
    return half if inp.workload == "dw" else min(4, half)


def _parallelism(inp: Inputs) -> list[Tuned]:
    cores = inp.cores
    cpu = f"{inp.cpu_millis / 1000:g} CPU limit ({cores} core{'s' if cores > 1 else ''})"
    mwp = max(8, cores)
    parallel = cores if cores >= 2 else 0
    per_gather = _per_gather(inp)
    maint = 0 if cores < 2 else min(4, cores // 2)
    cap = "" if inp.workload == "dw" else ", at most 4"
    return [
        Tuned("max_worker_processes", str(mwp), "tuned",
              f"one per core of the {cpu}, at least PostgreSQL's 8 (room for logical replication and extensions)"),
        Tuned("max_parallel_workers", str(parallel), "tuned",
              f"one per core of the {cpu}; none below 2 cores (PostgreSQL would assume the host's cores)"),
        Tuned("max_parallel_workers_per_gather", str(per_gather), "tuned",
              f"half the cores of the {cpu}{cap} = {per_gather}"),
        Tuned("max_parallel_maintenance_workers", str(maint), "tuned",
              f"half the cores of the {cpu}, at most 4 = {maint}"),
    ]


def _storage(inp: Inputs) -> list[Tuned]:
    kind = "ssd" if inp.ssd else "hdd"
    dst = "500" if inp.workload == "dw" else "100"
    return [
        Tuned("random_page_cost", "1.1" if inp.ssd else "4", "tuned",
              f"storage.kind {kind}: a random read costs {'about' if inp.ssd else '4×'} a sequential one (pgtune)"),
        Tuned("effective_io_concurrency", "200" if inp.ssd else "2", "tuned",
              f"storage.kind {kind}: {'many' if inp.ssd else 'few'} concurrent I/O requests pay off (pgtune)"),
        Tuned("default_statistics_target", dst, "tuned",
              f"workload {inp.workload}: {'finer statistics for analytic plans' if dst == '500' else 'the usual'}"
              " (pgtune)"),
    ]


def wal_budget(inp: Inputs) -> list[Tuned]:
    """WAL sizes that together never exceed half the volume, so WAL alone can never fill it.

    max_wal_size: 20% of the volume (at most pgtune's value for the workload); min_wal_size: a quarter
    of it; wal_keep_size: 5% of the volume, at most 4GB; max_slot_wal_keep_size: 20% of the volume
    (slots exist for every member, and PostgreSQL's default lets them keep WAL without limit), less
    the archive backlog bound when spec.backup archives: PostgreSQL keeps every segment not yet
    archived whatever the sizes say, so that bound is part of the budget too.
    """
    vol, vt = inp.volume, inp.volume_text
    cap = WORKLOAD_MAX_WAL[inp.workload]
    max_wal = max(2 * WAL_SEGMENT, min(cap, _mb(vol // 5)))
    min_wal = max(2 * WAL_SEGMENT, _mb(max_wal // 4))
    keep = min(4 * GiB, _mb(vol // 20))
    backlog = inp.archive_backlog
    slots = max(2 * WAL_SEGMENT, _mb(vol // 5) - backlog)
    total = max_wal + min_wal + keep + slots + backlog
    sizes = "all four WAL sizes and the archive backlog" if backlog else "all four WAL sizes"
    note = f"; {sizes} = {human_bytes(total)} ≤ 50% of {vt}"
    slot_reason = (f"20% of {vt} volume less the archive backlog bound {human_bytes(backlog)} = {human_bytes(slots)}"
                   if backlog else f"20% of {vt} volume = {human_bytes(slots)}")
    return [
        Tuned("max_wal_size", format_bytes_for("MB", max_wal), "tuned",
              f"20% of {vt} volume, at most {human_bytes(cap)} for {inp.workload} (pgtune) = {human_bytes(max_wal)}"
              + note),
        Tuned("min_wal_size", format_bytes_for("MB", min_wal), "tuned",
              f"a quarter of max_wal_size, at least two 16MB segments = {human_bytes(min_wal)}"),
        Tuned("wal_keep_size", format_bytes_for("MB", keep), "tuned",
              f"5% of {vt} volume, at most 4GB = {human_bytes(keep)}: a cushion for replicas without a slot"),
        Tuned("max_slot_wal_keep_size", format_bytes_for("MB", slots), "tuned",
              f"{slot_reason}: slots may hold WAL for a lagging member, never fill the volume"),
    ]


def wal_budget_limit(volume: int) -> int:
    return int(volume * WAL_BUDGET_SHARE)


def _checkpoints(inp: Inputs) -> list[Tuned]:
    return [
        Tuned("checkpoint_timeout", "15min", "default",
              "fewer checkpoints, so fewer full-page images (wal_log_hints is on); max_wal_size bounds crash recovery"),
        Tuned("checkpoint_completion_target", "0.9", "default",
              "spread checkpoint writes over 90% of the interval (pgtune; PostgreSQL 14+ default)"),
    ]
