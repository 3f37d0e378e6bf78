"""Are the libraries a document preloads installed for its PostgreSQL major?

A missing library in shared_preload_libraries stops postgres at every start (and one in
session_preload_libraries refuses every connection, the agent's too), so it is worth one look at
the disk. It is only a look where the target binaries are: rendering for Kubernetes on a laptop
says nothing, because there the libraries that count are in the image, not here.
"""

from __future__ import annotations

import difflib
import functools
import subprocess
from pathlib import Path

from pgkeel.document import PostgresCluster

PRELOADS = ("shared_preload_libraries", "session_preload_libraries")
SUFFIX = ".so"  # DLSUFFIX on Linux
_PATH = "spec.postgres.parameters"


@functools.lru_cache(maxsize=8)
def pkglibdir(bindir: Path) -> Path | None:
    """`pg_config --pkglibdir` of the binaries in `bindir`, else Debian's layout (bindir/../lib);
    None when the server binaries are not here."""
    if not (bindir / "postgres").is_file():
        return None
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        try:
            out = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True, text=True, timeout=10,
                                 check=True)
            found = Path(out.stdout.strip())
            if found.is_dir():
                return found
        except (OSError, subprocess.SubprocessError):
            pass
    fallback = bindir.parent / "lib"
    return fallback if fallback.is_dir() else None


def list_items(value: str) -> list[str]:
    """The names of a GUC list (`a, "b", c`): comma-separated, optionally double-quoted."""
    return [item.strip().strip('"') for item in value.split(",") if item.strip().strip('"')]


def _found(name: str, libdir: Path, search: list[Path]) -> bool:
    """PostgreSQL's own lookup (dfmgr.c): a name with a slash is a path ($libdir expanded), else
    each directory of dynamic_library_path; each with and without the .so suffix."""
    candidates = [Path(name.replace("$libdir", str(libdir), 1))] if "/" in name else [d / name for d in search]
    return any(c.is_file() or c.with_name(c.name + SUFFIX).is_file() for c in candidates)


def _suggestion(name: str, libdir: Path) -> str:
    installed = sorted(p.name.removesuffix(SUFFIX) for p in libdir.glob(f"*{SUFFIX}"))
    close = difflib.get_close_matches(Path(name).name.removesuffix(SUFFIX), installed, n=1, cutoff=0.7)
    return f"; did you mean {close[0]}?" if close else "; install its package or remove it from the list"


def missing_libraries(cluster: PostgresCluster) -> list[str]:
    """`field: problem; fix` for each preloaded library not installed; [] when the binaries are not here."""
    pg = cluster.spec.postgres
    wanted = {n: v for n, v in pg.parameters.items() if n in PRELOADS and isinstance(v, str) and v.strip()}
    if not wanted:
        return []
    bindir = Path(pg.binaries)
    libdir = pkglibdir(bindir)
    if libdir is None:
        return []
    path = pg.parameters.get("dynamic_library_path", "$libdir")
    search = [Path(p.replace("$libdir", str(libdir), 1)) for p in str(path).split(":") if p] or [libdir]
    errors = []
    for parameter, value in wanted.items():
        for name in list_items(value):
            if not _found(name, libdir, search):
                errors.append(
                    f"{_PATH}.{parameter}: library {name!r} is not installed for PostgreSQL {pg.version}: not found "
                    f"in {', '.join(map(str, search))} (the package library directory of {bindir}), so postgres "
                    f"would {'not start' if parameter == PRELOADS[0] else 'refuse every connection'}"
                    f"{_suggestion(name, libdir)}"
                )
    return errors
