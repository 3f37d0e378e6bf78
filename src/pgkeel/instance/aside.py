"""The one place a node keeps an old data directory: `<datadir>.aside`, never more than one.

Data is never deleted, but each aside copy is a whole database on the same volume, so an
unbounded number of them fills the disk and turns one failure into many (review F12/F18).
A node therefore has a single slot: a second move is refused with `AsideOccupied`, and the
agent alarms instead of cloning until an operator has looked at the first copy. Directories
left by older versions (`<datadir>.old-<timestamp>`) occupy the slot too.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

ASIDE_SUFFIX = ".aside"
LEGACY_GLOB = ".old-*"
MARKER = "pgkeel-aside.json"  # inside the aside directory: it travels with the data


class AsideOccupied(RuntimeError):
    """The single aside slot is taken; nothing was moved."""

    def __init__(self, existing: list[Path], datadir: Path) -> None:
        names = ", ".join(str(p) for p in existing)
        super().__init__(
            f"refusing to move {datadir} aside: an older copy is kept at {names}. Check whether it holds "
            f"data that exists nowhere else, then move it off this volume or remove it; until then this "
            f"node is not re-cloned"
        )
        self.existing = existing


@dataclass(frozen=True)
class AsideInfo:
    path: Path
    bytes: int  # disk usage of the files (apparent sizes), counted when moved or listed
    created: float  # Unix time the move happened (the marker's; else the directory's mtime)
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "bytes": self.bytes, "created": self.created, "reason": self.reason}


def aside_path(datadir: Path) -> Path:
    return datadir.with_name(datadir.name + ASIDE_SUFFIX)


def _existing(datadir: Path) -> list[Path]:
    found = [p for p in [aside_path(datadir)] if p.exists()]
    found += sorted(p for p in datadir.parent.glob(datadir.name + LEGACY_GLOB) if p.is_dir())
    return found


def tree_bytes(root: Path) -> int:
    """Sum of file sizes under `root` without following symlinks (tablespace links are not ours)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # a file vanished while counting: the figure is an estimate anyway
    return total


def move_aside(datadir: Path, reason: str) -> Path:
    """Rename `datadir` to the aside slot and record when and why; raise AsideOccupied if taken."""
    existing = _existing(datadir)
    if existing:
        raise AsideOccupied(existing, datadir)
    target = aside_path(datadir)
    datadir.rename(target)  # same filesystem: atomic, no copy, no extra space
    marker = {"created": time.time(), "reason": reason, "from": str(datadir), "bytes": tree_bytes(target)}
    tmp = target / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    tmp.replace(target / MARKER)
    return target


def list_asides(datadir: Path) -> list[AsideInfo]:
    """Every kept copy of this node's data directory (the slot and legacy `.old-*` ones)."""
    result = []
    for path in _existing(datadir):
        info: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((path / MARKER).read_text(encoding="utf-8"))
        size = info.get("bytes")
        created = info.get("created")
        result.append(
            AsideInfo(
                path=path,
                bytes=size if isinstance(size, int) else tree_bytes(path),
                created=float(created) if isinstance(created, int | float) else path.stat().st_mtime,
                reason=str(info.get("reason", "unknown (no marker: left by an older pgkeel)")),
            )
        )
    return result
