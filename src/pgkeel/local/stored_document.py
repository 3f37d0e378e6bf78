"""The document a local cluster runs with, kept in its directory: which one `up` uses, and what another may change.

A restart (`up` without -f) never reverts the cluster's settings to an example: it uses the
cluster's own copy. Another document replaces it only when asked (`--apply`), after the user saw
the diff. What pgkeel cannot carry out on existing data is refused before anything is written:
other member names (metadata.name, spec.instances) and another major version, which postgres
would refuse at every start (pg_upgrade is not done yet).
"""

from __future__ import annotations

import contextlib
import difflib
from pathlib import Path

from pgkeel.document import PostgresCluster, SpecError, load_cluster
from pgkeel.local.layout import Layout


class DocumentChanged(ValueError):
    """`up -f FILE` on a cluster whose own document differs, without --apply; the message holds the diff."""


def for_up(layout: Layout, given: Path | None, default: Path) -> Path:
    """The one given, else the cluster's own, else `default` (a new cluster)."""
    if given is not None:
        return given
    return layout.document if layout.document.exists() else default


def document_diff(old: Path, new: Path) -> str:
    """A unified diff of two documents' text, as `diff -u` prints it."""
    lines = difflib.unified_diff(
        old.read_text(errors="replace").splitlines(), new.read_text(errors="replace").splitlines(),
        fromfile=str(old), tofile=str(new), lineterm="",
    )
    return "\n".join(lines)


def check_change(layout: Layout, document: Path, cluster: PostgresCluster, apply: bool) -> bool:
    """Whether `document` (already parsed as `cluster`) becomes the cluster's own; DocumentChanged, with the
    diff, when it differs from the one kept and `apply` is not given."""
    stored = layout.document
    if not stored.exists():
        return True  # a new cluster
    if Path(document).resolve() == stored.resolve():
        return False
    try:
        existing: PostgresCluster | None = load_cluster(stored)
    except SpecError as exc:
        existing = None
        if not apply:
            raise DocumentChanged(f"{stored}, the cluster's document, is not valid: {'; '.join(exc.errors)}; fix "
                                  f"it, or replace it with `pgkeel up -f {document} --apply`") from None
    if existing is not None:
        refuse_major_change(cluster.spec.postgres.version, {str(stored): existing.spec.postgres.version})
        if existing == cluster:
            return False  # the same settings (comments or layout may differ): the cluster's text stays
    if not apply:
        raise DocumentChanged(
            f"{document} differs from {stored}, the document this cluster runs with:\n"
            f"{document_diff(stored, document)}\n"
            f"nothing was changed. To run with {document} from now on: pgkeel up -f {document} --apply "
            f"--dir {layout.root}; to keep the cluster's document, leave out -f"
        )
    return True


def check_carried_out(layout: Layout, cluster: PostgresCluster, scaling: bool = False) -> None:
    """ValueError for what `up` cannot do to the cluster laid out in `layout`, whichever document asks for it
    (the cluster's own, edited, included): other members (unless `scaling`: `pgkeel apply`), another major
    version."""
    laid_out = sorted(layout.load_state()["pg_ports"])
    if laid_out and laid_out != sorted(cluster.member_names()) and not scaling:
        raise ValueError(
            f"{layout.root} holds members {', '.join(laid_out)} and the document names "
            f"{', '.join(cluster.member_names())}: `up` does not add or remove members: "
            "change spec.instances with `pgkeel apply -f FILE` on the running cluster, or use another --dir"
        )
    refuse_major_change(cluster.spec.postgres.version, data_majors(layout, cluster.member_names()))


def data_majors(layout: Layout, members: list[str]) -> dict[str, int]:
    """PG_VERSION of every member's data directory that has one, by its path."""
    found = {}
    for name in members:
        path = layout.member_dir(name).datadir / "PG_VERSION"
        with contextlib.suppress(OSError, ValueError):
            found[str(path)] = int(path.read_text().strip())
    return found


def refuse_major_change(wanted: int, found: dict[str, int]) -> None:
    """ValueError when something of this cluster (its document, a data directory) is another major version."""
    other = {where: major for where, major in found.items() if major != wanted}
    if other:
        where, major = next(iter(other.items()))
        raise ValueError(
            f"spec.postgres.version: this cluster is PostgreSQL {major} ({where}) and the document says {wanted}: "
            "major upgrades are not supported yet; "
            f"keep spec.postgres.version: {major} (to move to {wanted}, dump and restore into a new cluster)"
        )
