"""The deadline file codec and FenceFile: the byte layout pgkeel_fence.c reads, and fail-closed parsing."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest

from pgkeel.instance import fence
from pgkeel.instance.fence import FenceFile, FenceFileError, boot_id, boottime, decode, encode


def test_layout_matches_the_c_side(tmp_path: Path) -> None:
    with FenceFile.create(tmp_path / "f") as ff:
        ff.arm_until(1234.5)
        raw = (tmp_path / "f").read_bytes()
    assert len(raw) == 64
    assert raw[0:8] == b"PGKFENC1"
    assert struct.unpack_from("<I", raw, 8)[0] == 1  # version
    assert struct.unpack_from("<I", raw, 12)[0] == 1  # armed
    assert struct.unpack_from("<q", raw, 16)[0] == 1_234_500_000_000  # CLOCK_BOOTTIME ns
    assert raw[24:60] == boot_id()
    assert raw[60:64] == b"\0\0\0\0"


def test_create_is_disarmed_private_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"junk")
    old_inode = path.stat().st_ino
    with FenceFile.create(path) as ff:
        state = ff.read()
        assert not state.armed
        assert state.boot_id_matches
        assert not state.writable()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != old_inode  # backends mapping the old file see a new inode
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temp file left


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership only changes when run as root")
def test_create_as_root_gives_the_file_to_postgres(tmp_path: Path) -> None:
    import pwd

    FenceFile.create(tmp_path / "f").close()
    assert (tmp_path / "f").stat().st_uid == pwd.getpwnam("postgres").pw_uid


def test_arm_disarm_and_the_verdict(tmp_path: Path) -> None:
    with FenceFile.create(tmp_path / "f") as ff:
        now = boottime()
        ff.arm_until(now + 5)
        s = ff.read()
        assert s.armed and s.writable(now)
        assert s.remaining(now) == pytest.approx(5, abs=1e-6)
        assert not s.writable(now + 5)  # at the deadline: refused
        ff.disarm()
        assert not ff.read().writable(now)
        assert ff.read().deadline == pytest.approx(now + 5)
        ff.arm_until(now - 1)
        assert ff.read().armed and not ff.read().writable()
    # A second mapping (as postgres has) sees every store at once, without fsync.
    with FenceFile.open(tmp_path / "f") as a, FenceFile.open(tmp_path / "f") as b:
        a.arm_until(now + 60)
        assert b.read().writable()
        a.disarm()
        assert not b.read().armed


def test_other_boot_is_never_writable() -> None:
    other = b"00000000-0000-0000-0000-000000000000"
    data = encode(armed=True, deadline_ns=int((boottime() + 60) * 1e9), boot=other)
    state = decode(data)
    assert state.armed and not state.boot_id_matches and not state.writable()


@pytest.mark.parametrize(
    "data",
    [b"", b"PGKFENC1" + b"\0" * 55, b"PGKFENC1" + b"\0" * 57, b"PGKFENC2" + b"\0" * 56,
     b"PGKFENC1" + struct.pack("<I", 2) + b"\0" * 52],
    ids=["empty", "short", "long", "magic", "version"],
)
def test_malformed_files_are_rejected(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(FenceFileError):
        decode(data)
    (tmp_path / "f").write_bytes(data)
    with pytest.raises(FenceFileError):
        FenceFile.open(tmp_path / "f")
    with pytest.raises(FenceFileError):
        fence.read_file(tmp_path / "f")


def test_open_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FenceFileError):
        FenceFile.open(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        fence.read_file(tmp_path / "nope")


def test_postgres_options_merge_the_configured_preload_list() -> None:
    f = Path("/run/pgkeel/n1.fence")
    assert fence.postgres_options(False, f, "pg_stat_statements") == []
    assert fence.postgres_options(True, f, "") == [
        "-c", "shared_preload_libraries=pgkeel_fence", "-c", "pgkeel_fence.deadline_file=/run/pgkeel/n1.fence"]
    assert fence.fence_settings(True, f, "pg_stat_statements, auto_explain")["shared_preload_libraries"] == (
        "pg_stat_statements,auto_explain,pgkeel_fence")
    assert fence.preload_list('auto_explain,"pgkeel_fence"') == 'auto_explain,"pgkeel_fence"'
    assert fence.preload_list("pgkeel_fence") == "pgkeel_fence"
    with pytest.raises(ValueError):
        fence.postgres_options(True, Path("relative.fence"), "")


def test_extension_library(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    assert fence.extension_library(bindir) is None
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "pgkeel_fence.so").write_bytes(b"")
    assert fence.extension_library(bindir) == tmp_path / "lib" / "pgkeel_fence.so"
