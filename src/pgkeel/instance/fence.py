"""The leader lease deadline shared with PostgreSQL through a small mmap'd file.

A primary must stop acknowledging writes by its fence deadline even when the agent is stalled,
frozen or dead, so the deadline is not sent over SQL: the agent stores it in this file and the
`pgkeel_fence` library (ext/pgkeel_fence), preloaded into postgres, reads it at every write commit
and refuses once `CLOCK_BOOTTIME` has passed it. Where the library cannot load,
`pgkeel.instance.watchdog` reads the same file and kills the postmaster instead.

File layout, fixed 64 bytes, little-endian (the same table is in pgkeel_fence.c):

    offset size  field
         0    8  magic b"PGKFENC1"
         8    4  version (uint32, 1)
        12    4  armed (uint32: 1 = armed; anything else = fenced)
        16    8  deadline (int64, CLOCK_BOOTTIME nanoseconds)
        24   36  boot id (/proc/sys/kernel/random/boot_id, ASCII)
        60    4  reserved (zero)

The file lives outside PGDATA (pg_basebackup and pg_rewind must never copy it); a missing,
malformed or other-boot file, `armed != 1` or a passed deadline all mean "writes refused".
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from pgkeel.instance.process import RunAs, run

MAGIC = b"PGKFENC1"
VERSION = 1
SIZE = 64
OFF_VERSION = 8
OFF_ARMED = 12
OFF_DEADLINE = 16
OFF_BOOT_ID = 24
BOOT_ID_LEN = 36
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
LIBRARY = "pgkeel_fence"
_NS = 1_000_000_000

if sys.byteorder != "little":  # pragma: no cover - the C side refuses to build there too
    raise ImportError("pgkeel.instance.fence: the deadline file is little-endian")


class FenceFileError(RuntimeError):
    """The deadline file is missing or is not a pgkeel_fence deadline file."""


def boottime() -> float:
    """Seconds on CLOCK_BOOTTIME: keeps counting through suspend, like the store's TTL elsewhere."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_id() -> bytes:
    """This boot's id: CLOCK_BOOTTIME restarts at reboot, so a deadline is only valid in its boot."""
    value = BOOT_ID_PATH.read_bytes().strip()
    if len(value) != BOOT_ID_LEN:
        raise FenceFileError(f"unexpected boot id {value!r} in {BOOT_ID_PATH}")
    return value


def encode(*, armed: bool, deadline_ns: int, boot: bytes) -> bytes:
    """The 64 bytes of a deadline file (used by create(), tests and the watchdog's reader)."""
    if len(boot) != BOOT_ID_LEN:
        raise ValueError("boot id must be 36 bytes")
    return struct.pack("<8sIIq36s4x", MAGIC, VERSION, 1 if armed else 0, deadline_ns, boot)


@dataclass(frozen=True)
class FenceState:
    """What the file says now; `writable()` is the verdict postgres would reach."""

    armed: bool
    deadline: float  # CLOCK_BOOTTIME seconds
    boot_id_matches: bool

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the deadline (negative once passed)."""
        return self.deadline - (boottime() if now is None else now)

    def writable(self, now: float | None = None) -> bool:
        return self.armed and self.boot_id_matches and self.remaining(now) > 0


def decode(data: bytes, boot: bytes | None = None) -> FenceState:
    """Parse the 64 bytes; FenceFileError when they are not a deadline file."""
    if len(data) != SIZE:
        raise FenceFileError(f"deadline file has {len(data)} bytes, expected {SIZE}")
    magic, version, armed, deadline_ns, file_boot = struct.unpack("<8sIIq36s4x", data)
    if magic != MAGIC or version != VERSION:
        raise FenceFileError("not a pgkeel_fence deadline file (magic or version)")
    current = boot_id() if boot is None else boot
    return FenceState(armed=armed == 1, deadline=deadline_ns / _NS, boot_id_matches=file_boot == current)


def read_file(path: Path) -> FenceState:
    """Read a deadline file without mapping it (the watchdog's poll)."""
    try:
        with open(path, "rb") as f:
            data = f.read(SIZE + 1)
    except FileNotFoundError:
        raise  # the watchdog's signal to exit
    except OSError as exc:
        raise FenceFileError(f"cannot read {path}: {exc}") from exc
    return decode(data)


class FenceFile:
    """The agent's read-write mapping of one node's deadline file.

    Writes are plain stores into the shared page cache (a few µs, no fsync: postgres maps the same
    pages, and a reboot invalidates the file through the boot id anyway).
    """

    def __init__(self, path: Path, fd: int, mapping: mmap.mmap) -> None:
        self.path = path
        self._fd = fd
        self._map = mapping
        self._view = memoryview(mapping)
        # Typed views: item stores are single aligned 4/8-byte stores, never torn.
        self._u32 = self._view.cast("I")
        self._i64 = self._view.cast("q")
        self._boot = boot_id()

    @classmethod
    def create(cls, path: Path, run_as: RunAs | None = None) -> FenceFile:
        """A fresh, disarmed file for this boot at `path` (replacing any old one atomically).

        Owned by the postgres OS user when we are root, mode 0600. Backends that mapped an older
        file at the path notice the new inode at their next write commit and see "disarmed".
        """
        owner = run_as or RunAs.for_current_process()
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encode(armed=False, deadline_ns=0, boot=boot_id()))
            owner.chown(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return cls.open(path)

    @classmethod
    def open(cls, path: Path) -> FenceFile:
        """Map an existing file read-write; FenceFileError when it is not a deadline file."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise FenceFileError(f"{path} does not exist") from exc
        try:
            if os.fstat(fd).st_size != SIZE:
                raise FenceFileError(f"{path} is not {SIZE} bytes")
            mapping = mmap.mmap(fd, SIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            if mapping[:8] != MAGIC or struct.unpack_from("<I", mapping, OFF_VERSION)[0] != VERSION:
                mapping.close()
                raise FenceFileError(f"{path} is not a pgkeel_fence deadline file")
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, mapping)

    def arm_until(self, deadline: float) -> None:
        """Allow writes until `deadline` (CLOCK_BOOTTIME seconds): deadline first, then armed."""
        self._i64[OFF_DEADLINE // 8] = int(deadline * _NS)
        self._u32[OFF_ARMED // 4] = 1

    def disarm(self) -> None:
        """Refuse writes from now on, whatever the deadline (a disarmed primary is fenced)."""
        self._u32[OFF_ARMED // 4] = 0

    def read(self) -> FenceState:
        return decode(bytes(self._map[:SIZE]), self._boot)

    def close(self) -> None:
        """Unmap; the file and its state stay (postgres keeps enforcing what was last written)."""
        if self._map.closed:
            return
        self._u32.release()
        self._i64.release()
        self._view.release()
        self._map.close()
        os.close(self._fd)

    def __enter__(self) -> FenceFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def extension_library(bindir: Path) -> Path | None:
    """Where pgkeel_fence.so is for the PostgreSQL binaries in `bindir`; None when it is not installed.

    `pg_config --pkglibdir` when pg_config is there, else Debian's layout (bindir/../lib).
    """
    candidates: list[Path] = []
    pg_config = Path(bindir) / "pg_config"
    if pg_config.exists():
        try:
            out = subprocess.run(
                [str(pg_config), "--pkglibdir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.append(Path(bindir).parent / "lib")
    for libdir in candidates:
        lib = libdir / f"{LIBRARY}.so"
        if lib.is_file():
            return lib
    return None


def preload_list(configured_preload: str) -> str:
    """`configured_preload` with pgkeel_fence appended once (the config file's list is kept)."""
    names = [n.strip() for n in configured_preload.split(",") if n.strip()]
    if LIBRARY not in (n.strip('"') for n in names):
        names.append(LIBRARY)
    return ",".join(names)


def fence_settings(library_available: bool, deadline_file: Path, configured_preload: str) -> dict[str, str]:
    """The settings the agent adds on the postgres command line; empty without the library."""
    if not library_available:
        return {}
    if not Path(deadline_file).is_absolute():
        raise ValueError("the deadline file must be an absolute path")
    return {
        "shared_preload_libraries": preload_list(configured_preload),
        "pgkeel_fence.deadline_file": str(deadline_file),
    }


def postgres_options(library_available: bool, deadline_file: Path, configured_preload: str) -> list[str]:
    """`fence_settings` as postgres argv: ["-c", "name=value", ...]."""
    argv: list[str] = []
    for name, value in fence_settings(library_available, deadline_file, configured_preload).items():
        argv += ["-c", f"{name}={value}"]
    return argv


def configured_preload(bindir: Path, config_file: Path, datadir: Path, run_as: RunAs | None = None) -> str:
    """shared_preload_libraries as the config file sets it (`postgres -C`, as the postgres user).

    -c on the command line overrides the file, so the agent must merge, not replace, the list.
    Works while the server runs, and before the first initdb: without a data directory yet, the
    config file's own directory stands in (postgres -C only needs one that exists).
    """
    where = datadir if (Path(datadir) / "PG_VERSION").exists() else Path(config_file).parent
    out = run(
        [
            str(Path(bindir) / "postgres"),
            "-D",
            str(where),
            "-c",
            f"config_file={config_file}",
            "-C",
            "shared_preload_libraries",
        ],
        run_as=run_as or RunAs.for_current_process(),
        timeout=30,
    )
    # run() returns stdout then stderr: the value is the first line; LOG lines may follow on stderr.
    return out.split("\n", 1)[0].strip()
