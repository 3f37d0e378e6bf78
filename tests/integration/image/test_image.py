"""The built image's filesystem runs what a pod runs: pgkeel, PostgreSQL 15, pgBackRest, the fence library.

`podman run` cannot start containers on our machines (setrlimit is refused), so the test runs the
image's root filesystem the way the StatefulSet would: `podman image mount`, then a private mount +
pid namespace (`unshare`), the root bind-mounted read-only, the pod's volumes (data, /tmp,
/var/run/postgresql, /dev/shm) mounted writable, `chroot` and `setpriv` to the image's user 999 with
the image's own environment. The pid namespace dies with its shell, so no postgres outlives a test.

Opt-in, so CI time does not grow unless asked: runs when PGKEEL_IMAGE=1 (then builds the image with
scripts/build_image.sh, a failed build fails the test) or when the tag for the current inputs
(`pgkeel:src-<hash>`) already exists; otherwise skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "scripts" / "build_image.sh"
UID = 999
PG_LIB = "/usr/lib/postgresql/15/lib"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1800),  # with PGKEEL_IMAGE=1 the first test's setup may build the image cold (~4 min)
    pytest.mark.skipif(shutil.which("podman") is None and os.environ.get("PGKEEL_IMAGE") != "1",
                       reason="podman not installed (PGKEEL_IMAGE=1 installs it and builds the image)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting the image and chroot need root"),
]

# Runs as root inside `unshare --mount --pid --fork` (private propagation: nothing reaches the host).
# $1 image root, $2 data volume; the rest is the command, run as the image's user in its environment.
SANDBOX = r"""
set -eu
root=$1 data=$2; shift 2
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount -t tmpfs -o mode=2775,uid=999,gid=999 tmpfs "$root/run/postgresql"  # /var/run -> /run: mount inside the root
mount --bind "$data" "$root/var/lib/postgresql/data"
exec chroot "$root" /usr/bin/setpriv --reuid=999 --regid=999 --clear-groups --inh-caps=-all \
  /usr/bin/env -i "$@"
"""


@dataclass(frozen=True)
class Image:
    """A mounted image: its root filesystem and the container config a runtime would apply."""

    tag: str
    root: Path
    env: list[str]
    user: str
    workdir: str

    def run(self, script: str, data: Path | None = None, timeout: float = 60) -> str:
        """Run `sh -c script` in the image as the pod would (uid 999, read-only root); return stdout."""
        volume = data or Path(tempfile.mkdtemp(prefix="pgkeel-image-vol-"))
        try:
            os.chown(volume, UID, UID)
            argv = ["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
                    "sh", "-c", SANDBOX, "sandbox", str(self.root), str(volume),
                    *self.env, "sh", "-c", f"cd {self.workdir} && {script}"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        finally:
            if data is None:
                shutil.rmtree(volume, ignore_errors=True)
        assert done.returncode == 0, f"{script!r} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done.stdout


def _tag() -> str:
    """pgkeel:src-<hash of the build inputs>: computed by the build script, the one place that knows them."""
    return subprocess.run(["bash", str(BUILD), "--print-tag"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The image for the current sources, mounted for the module; built first only when PGKEEL_IMAGE=1."""
    if os.environ.get("PGKEEL_IMAGE") == "1":
        built = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=1800)
        assert built.returncode == 0, f"image build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    tag = _tag()
    if subprocess.run(["podman", "image", "exists", tag]).returncode != 0:
        pytest.skip(f"{tag} not built (make image, or PGKEEL_IMAGE=1 to build it here)")
    config = json.loads(subprocess.run(["podman", "image", "inspect", "--format", "{{json .Config}}", tag],
                                       capture_output=True, text=True, check=True).stdout)
    root = Path(subprocess.run(["podman", "image", "mount", tag], capture_output=True, text=True,
                               check=True).stdout.strip())
    try:
        yield Image(tag, root, config.get("Env") or [], config.get("User", ""), config.get("WorkingDir") or "/")
    finally:
        subprocess.run(["podman", "image", "unmount", tag], capture_output=True, check=False)


def test_image_runs_as_postgres_uid_999_as_the_stateful_set_expects(image: Image) -> None:
    assert image.user == f"{UID}:{UID}"
    assert image.run("id -u; id -g; getent passwd postgres | cut -d: -f3,4").split() == ["999", "999", "999:999"]


def test_pgkeel_in_the_image_is_the_version_of_the_sources(image: Image) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version in image.run("pgkeel --version")


def test_image_has_postgresql_15_and_pgbackrest(image: Image) -> None:
    assert "(PostgreSQL) 15." in image.run("postgres --version")
    assert image.run("pgbackrest version").startswith("pgBackRest ")


def test_fence_library_is_installed_for_the_image_postgres(image: Image) -> None:
    assert (image.root / PG_LIB.lstrip("/") / "pgkeel_fence.so").is_file()
    assert (image.root / "usr/share/postgresql/15/extension/pgkeel_fence.control").is_file()


def test_image_runs_a_database_on_its_data_volume_with_a_read_only_root(image: Image) -> None:
    """initdb into the volume, start on the socket only with the fence preloaded, query, stop.

    No deadline file is configured, so the fence must fail closed: reads answer, a write is refused.
    """
    data = Path(tempfile.mkdtemp(prefix="pgkeel-image-data-"))
    try:
        out = image.run(
            "set -e; touch / 2>/dev/null && exit 9; "  # the root must be read-only, as in the pod
            'initdb -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null; '
            "pg_ctl -D \"$PGDATA\" -w -t 60 -l /tmp/pg.log -o \"-c listen_addresses='' "
            '-c unix_socket_directories=/var/run/postgresql -c shared_preload_libraries=pgkeel_fence" '
            "start >/dev/null || { cat /tmp/pg.log; exit 1; }; "
            "psql -h /var/run/postgresql -U postgres -XAtc 'SELECT 1'; "
            "psql -h /var/run/postgresql -U postgres -XAtc 'SHOW pgkeel_fence.enforce'; "
            "psql -h /var/run/postgresql -U postgres -XAtc 'CREATE TABLE t ()' 2>&1 | grep -q pgkeel_fence "
            "&& echo fenced; "
            'pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null',
            data=data, timeout=180)
        assert out.split() == ["1", "on", "fenced"]
        assert (data / "pgdata" / "PG_VERSION").read_text().strip() == "15"
        assert (data / "pgdata").stat().st_uid == UID
        assert not (data / "pgdata" / "postmaster.pid").exists()  # stopped cleanly
    finally:
        shutil.rmtree(data, ignore_errors=True)
