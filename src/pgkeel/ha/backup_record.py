"""The store's `backups` value (pgkeel.backup.plan.BackupRecord): read it, change it by compare-and-swap,
and queue an on-demand backup. Any node's API may queue one; only the leader's agent runs it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pgkeel.backup.plan import ABANDONED, BackupRecord, Request, Result
from pgkeel.dcs import DCS, DCSError

KEY = "backups"
ATTEMPTS = 8
KINDS = ("full", "diff", "incr", "drill")


def read_record(dcs: DCS) -> tuple[BackupRecord, int]:
    current = dcs.view().values.get(KEY)
    return BackupRecord.from_json(current.value if current else None), current.version if current else 0


def update_record(dcs: DCS, change: Callable[[BackupRecord], BackupRecord]) -> BackupRecord:
    """Apply `change` by compare-and-swap, re-reading on a lost race; the record as written."""
    for _ in range(ATTEMPTS):
        record, version = read_record(dcs)
        new = change(record)
        if new == record or dcs.set_value(KEY, new.to_json(), version):
            return new
    raise DCSError("the backups record kept changing while it was written; try again")


def request_backup(dcs: DCS, kind: str, by: str | None, now: float | None = None) -> Request:
    """Queue an on-demand backup (or restore drill); ValueError for an unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown backup kind {kind!r}: one of {', '.join(KINDS)}")
    at = time.time() if now is None else now
    request = Request(f"req-{int(at * 1000)}-{kind}", kind, at, by)
    update_record(dcs, lambda r: replace(r, requests=(*r.requests, request)))
    return request


def wait_for_result(
    read: Callable[[], dict[str, Any]],
    request_id: str,
    timeout: float,
    progress: Callable[[str], None] | None = None,
    poll: float = 1.0,
) -> Result:
    """Poll a node's GET /backups (`read`) until the request has a result; TimeoutError after `timeout`.
    `progress` hears what is going on whenever it changes (queued, running on whom)."""
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        record = BackupRecord.from_json(read())
        result = record.result_of(request_id)
        if result is not None and (result.ok or result.error != ABANDONED):
            return result
        run = record.run
        now = ("running: " + f"{run.kind} backup on {run.member}" if run is not None and run.request == request_id
               else f"queued behind {run.kind} backup on {run.member}" if run is not None else "queued for the leader")
        if progress is not None and now != said:
            progress(now)
        said = now
        if time.monotonic() > deadline:
            raise TimeoutError(f"backup request {request_id} has no result after {timeout:.0f}s ({now}); "
                               "it stays queued: see `pgkeel status`")
        time.sleep(poll)


class StoredGap:
    """The archive watch's memory of an open gap (pgkeel.backup.archive_watch.GapMemory), in the backups record."""

    def __init__(self, dcs: DCS) -> None:
        self.dcs = dcs

    def load(self) -> tuple[float, str | None] | None:
        return read_record(self.dcs)[0].gap

    def save(self, gap: tuple[float, str | None] | None) -> None:
        update_record(self.dcs, lambda r: replace(r, gap=gap))
