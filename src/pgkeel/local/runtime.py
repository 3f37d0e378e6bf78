"""Where local agents run from and keep their cluster, so that the postgres OS user can read both.

An agent started as root drops to the postgres user before anything else and keeps importing
modules after that (lazy imports, the watchdog process); postgres itself must reach its data
directory. A clone in a folder that user cannot read (as root under /root, mode 0700) would make
every agent die at once on an import, and every postgres fail on its data directory. So, only when
root starts agents from such a clone:

- the agents run from a copy of pgkeel and of the files of every distribution it depends on
  (found through importlib.metadata) under /var/lib/pgkeel/runtime/<id>/, refreshed file by file
  when one changed, with the base interpreter and PYTHONPATH pointing at the copy;
- the default cluster directory (.pgkeel) becomes a symbolic link to /var/lib/pgkeel/clusters/<id>/;
  an explicit directory the postgres user cannot reach is refused, naming the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pwd
import re
import shutil
import stat
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from pgkeel.instance.process import POSTGRES_OS_USER

STATE_ROOT = Path("/var/lib/pgkeel")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


@dataclass(frozen=True)
class AgentCommand:
    """How to start `python -m pgkeel …` for an agent: the argv prefix and extra environment."""

    argv: tuple[str, ...]
    env: dict[str, str]
    copied_to: Path | None = None  # the runtime copy, when one was needed


def readable_by(path: Path, user: str = POSTGRES_OS_USER) -> bool:
    """Can `user` reach `path` (search permission on every ancestor) and read it?"""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    groups = set(os.getgrouplist(user, entry.pw_gid))
    path = path.resolve()
    chain = [*reversed(path.parents), path]
    for index, part in enumerate(chain):
        try:
            st = part.stat()
        except OSError:
            return False
        need = stat.S_IXUSR if index < len(chain) - 1 or part.is_dir() else 0
        need |= stat.S_IRUSR if index == len(chain) - 1 else 0
        if entry.pw_uid == st.st_uid:
            granted = st.st_mode & (stat.S_IRWXU)
        elif st.st_gid in groups:
            granted = (st.st_mode & stat.S_IRWXG) << 3
        else:
            granted = (st.st_mode & stat.S_IRWXO) << 6
        if granted & need != need:
            return False
    return True


def runtime_id(text: str) -> str:
    """The short name of a copy or cluster directory under STATE_ROOT for `text` (a path)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def agent_command() -> AgentCommand:
    """The command for local agents: this interpreter, or a runtime copy the postgres user can read."""
    here = AgentCommand((sys.executable, "-m", "pgkeel"), {})
    if os.geteuid() != 0:
        return here  # agents run as this user: what it can read, they can
    package = Path(__file__).resolve().parents[1]  # the pgkeel package
    site = Path(sysconfig.get_paths()["purelib"])
    if readable_by(package) and readable_by(site):
        return here
    dest = STATE_ROOT / "runtime" / runtime_id(sys.prefix)
    sync_runtime(package, dest)
    env = {"PYTHONPATH": str(dest), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()  # the interpreter behind the venv
    return AgentCommand((str(base), "-m", "pgkeel"), env, dest)


def _dependencies(name: str, extras: frozenset[str] = frozenset(), seen: set[str] | None = None) -> set[str]:
    """The installed distributions `name` needs at run time (its extras' too), itself included."""
    seen = set() if seen is None else seen
    key = name.lower().replace("_", "-")
    if key in seen:
        return seen
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return seen  # e.g. a requirement for another platform
    seen.add(key)
    for requirement in dist.requires or []:
        spec, _, marker = requirement.partition(";")
        wanted = _EXTRA_MARKER.search(marker)
        if wanted is not None and wanted.group(1) not in extras:
            continue
        m = _REQUIREMENT.match(spec)
        if m is None:
            continue
        sub_extras = frozenset(e.strip() for e in (m.group(2) or "").split(",") if e.strip())
        _dependencies(m.group(1), sub_extras, seen)
    return seen


def _copy_if_changed(source: Path, target: Path) -> bool:
    try:
        src, dst = source.stat(), target.stat()
        if src.st_size == dst.st_size and int(src.st_mtime) == int(dst.st_mtime):
            return False
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    shutil.copy2(source, target)
    os.chmod(target, 0o755 if os.access(source, os.X_OK) else 0o644)
    return True


def sync_runtime(package: Path, dest: Path) -> int:
    """Copy pgkeel (from `package`) and its dependencies' files into `dest`; return how many changed."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o755)
    for directory in (STATE_ROOT, STATE_ROOT / "runtime", dest):
        os.chmod(directory, 0o755)
    changed = 0
    for source in package.rglob("*"):
        if source.is_file() and "__pycache__" not in source.parts:
            changed += _copy_if_changed(source, dest / "pgkeel" / source.relative_to(package))
    # pgkeel's own metadata (an editable install keeps it in the venv), so the copy knows its version.
    own = importlib.metadata.distribution("pgkeel")
    text = own.read_text("METADATA") or f"Metadata-Version: 2.1\nName: pgkeel\nVersion: {own.version}\n"
    target = dest / f"pgkeel-{own.version}.dist-info" / "METADATA"
    if not target.is_file() or target.read_text() != text:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_text(text)
        os.chmod(target, 0o644)
        changed += 1
    for name in sorted(_dependencies("pgkeel") - {"pgkeel"}):
        dist = importlib.metadata.distribution(name)
        root = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file))).resolve()
            if "__pycache__" in source.parts or not source.is_relative_to(root) or not source.is_file():
                continue  # bytecode, and scripts installed outside site-packages
            changed += _copy_if_changed(source, dest / source.relative_to(root))
    for directory in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        os.chmod(directory, 0o755)
    return changed


def place_cluster_dir(directory: Path, default: bool) -> tuple[Path, str | None]:
    """Where a new local cluster in `directory` lives, and a note for the user when it moved.

    Root only: the postgres user must reach the directory. The default one is moved to
    /var/lib/pgkeel/clusters/<id> behind a symbolic link; an explicit one is refused."""
    if os.geteuid() != 0:
        return directory, None
    if directory.is_symlink():
        target = directory.resolve()
        target.mkdir(parents=True, exist_ok=True)
        return directory, None
    probe = directory if directory.exists() else directory.absolute().parent
    if readable_by(probe):
        return directory, None
    if directory.exists() and any(directory.iterdir()):
        raise ValueError(
            f"{directory}: the {POSTGRES_OS_USER} OS user cannot reach this directory, and it is not empty; "
            f"run `pgkeel down --dir {directory} --purge` and start again, or pass --dir with a directory "
            f"it can read (e.g. {STATE_ROOT}/NAME)"
        )
    if not default:
        raise ValueError(
            f"--dir {directory}: the {POSTGRES_OS_USER} OS user cannot reach it (an ancestor is not searchable, "
            f"e.g. /root with mode 0700), and postgres must open its data directory there; "
            f"choose a directory it can read, e.g. --dir {STATE_ROOT}/NAME"
        )
    target = STATE_ROOT / "clusters" / runtime_id(str(directory.absolute()))
    target.mkdir(parents=True, exist_ok=True)
    for part in (STATE_ROOT, STATE_ROOT / "clusters", target):
        os.chmod(part, 0o755)
    if directory.exists():
        directory.rmdir()  # empty (checked above)
    directory.symlink_to(target, target_is_directory=True)
    return directory, (
        f"{directory.absolute().parent} is not readable by the {POSTGRES_OS_USER} OS user: "
        f"the cluster lives in {target} ({directory} links there)"
    )
