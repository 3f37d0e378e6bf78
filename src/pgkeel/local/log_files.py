"""Following a local member's log files (`pgkeel logs --follow`): new lines as they are written.

Why not `tail -F`: postgres.log is rotated by pgkeel (pgkeel.instance.logs) either by rename (a new
file at the same path) or by copy-and-truncate (the same file, shorter). Both are noticed here: a
new inode is read from its start, a file shorter than what was read is read again from its start.
Lines are yielded whole; a partial last line waits for its newline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

POLL_SECONDS = 0.25


class _Followed:
    """One file, from its current end (what `logs` printed already is not repeated)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode, self.offset = self._identity()
        self.partial = b""

    def _identity(self) -> tuple[int | None, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None, 0
        return st.st_ino, st.st_size

    def new_lines(self) -> list[str]:
        inode, size = self._identity()
        if inode is None:
            return []  # not there (yet): a node that never started postgres
        if inode != self.inode or size < self.offset:  # renamed away or truncated: read the new file whole
            self.inode, self.offset, self.partial = inode, 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        self.offset += len(data)
        *whole, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") + "\n" for line in whole]


def follow_files(paths: dict[str, Path], poll: float = POLL_SECONDS) -> Iterator[tuple[str, str]]:
    """(label, line) for every line appended to any of `paths` from now on; runs until the caller stops."""
    followed = {label: _Followed(path) for label, path in paths.items()}
    while True:
        for label, f in followed.items():
            for line in f.new_lines():
                yield label, line
        time.sleep(poll)
