"""Validation of a document's PostgreSQL parts: user parameters against the catalogue and the cluster's
needs, and user hba rules. Every problem is reported at once with its field path and a fix.
"""

from __future__ import annotations

import re
import reprlib

from pgkeel.document import DocumentCheck, PostgresCluster
from pgkeel.pgconf import policy, tuning
from pgkeel.pgconf.catalogue import Guc, available_majors, closest_name, is_custom_name, load_catalogue
from pgkeel.pgconf.hba import rule_warnings, validate_rules
from pgkeel.pgconf.libraries import missing_libraries
from pgkeel.pgconf.values import Parsed, human_bytes, parse_value

_PLAIN = re.compile(r"[A-Za-z0-9_.$-]+")
_CUSTOM = re.compile(r"^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)+$")
_PATH = "spec.postgres.parameters"
MiB = 2**20


def check_version(cluster: PostgresCluster) -> list[str]:
    major = cluster.spec.postgres.version
    if major < 13:
        return [f"spec.postgres.version: PostgreSQL {major} is not supported: pgkeel needs 13 or newer "
                "(wal_keep_size appeared in 13); set spec.postgres.version to 15"]
    if major not in available_majors():
        shipped = ", ".join(map(str, available_majors()))
        return [f"spec.postgres.version: no parameter catalogue for PostgreSQL {major}; use one of {shipped}"]
    return []


def check_parameters(cluster: PostgresCluster) -> tuple[dict[str, Parsed], list[str]]:
    """User parameters parsed to the text pgkeel writes, plus one error line per refused parameter."""
    major = cluster.spec.postgres.version
    catalogue = load_catalogue(major)
    parsed: dict[str, Parsed] = {}
    errors: list[str] = []
    for name, raw in cluster.spec.postgres.parameters.items():
        path = f"{_PATH}.{name}" if _PLAIN.fullmatch(name) else f"{_PATH}[{reprlib.repr(name)}]"  # one line
        problem = _check_one(cluster, catalogue, name, raw, parsed)
        if problem:
            errors.append(f"{path}: {problem}")
    errors += _check_wal_budget(cluster, parsed)
    return parsed, errors


def _check_one(
    cluster: PostgresCluster, catalogue: dict[str, Guc], name: str, raw: object, parsed: dict[str, Parsed]
) -> str | None:
    major = cluster.spec.postgres.version
    refused = policy.refused_name(name.lower())
    if refused:
        return refused
    if name not in catalogue:
        if name.lower() in catalogue:
            return f"parameter names are lower-case; write {name.lower()}"
        if is_custom_name(name):
            if not _CUSTOM.fullmatch(name):  # `$` would accept a trailing newline
                return "an extension parameter is `extension.name` in lower-case letters, digits and _"
            if isinstance(raw, str) and re.search(r"[\x00-\x1f\x7f]", raw):
                return "contains a line break or control character; give a single-line value"
            parsed[name] = Parsed(("on" if raw else "off") if isinstance(raw, bool) else str(raw))
            return None
        suggestion = closest_name(major, name)
        hint = f"; did you mean {suggestion}?" if suggestion else "; see the PostgreSQL documentation for its name"
        return f"unknown parameter for PostgreSQL {major}{hint}"
    guc = catalogue[name]
    if guc.context == "internal":
        return "read-only: fixed when PostgreSQL was built or the cluster was initialised; remove it"
    try:
        value = parse_value(guc, raw)  # type: ignore[arg-type]
    except ValueError as exc:
        return str(exc)
    reason = policy.guard(cluster, name, value)
    if reason:
        return reason
    parsed[name] = value
    return None


def _check_wal_budget(cluster: PostgresCluster, parsed: dict[str, Parsed]) -> list[str]:
    """User WAL sizes must leave the four sizes within half the volume, as the tuned ones do."""
    given = [n for n in tuning.WAL_SIZES if n in parsed and parsed[n].base is not None]
    if not given:
        return []
    errors = []
    for name in ("min_wal_size", "max_wal_size"):
        if name in given and (parsed[name].base or 0) < 32:
            errors.append(f"{_PATH}.{name}: must be at least two 16MB WAL segments (32MB); got {parsed[name].text!r}")
    inp = tuning.inputs_for(cluster)
    sizes = {t.name: _mb_of(t.value) for t in tuning.wal_budget(inp)}
    for name in given:
        sizes[name] = int(parsed[name].base or 0)
    total = sum(sizes.values()) * MiB + inp.archive_backlog
    limit = tuning.wal_budget_limit(inp.volume)
    if total > limit:
        parts = " + ".join(f"{n} {human_bytes(sizes[n] * MiB)}" for n in tuning.WAL_SIZES)
        if inp.archive_backlog:
            parts += f" + spec.backup.archive.maxBacklog {human_bytes(inp.archive_backlog)}"
        errors.append(
            f"{_PATH}.{given[0]}: WAL could fill the volume: {parts} = {human_bytes(total)} exceeds half of the "
            f"{cluster.spec.storage.size} volume ({human_bytes(limit)}); lower it or enlarge spec.storage.size"
        )
    return errors


def _mb_of(text: str) -> int:
    units = {"MB": 1, "GB": 1024, "TB": 1024 * 1024}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    raise ValueError(f"unexpected WAL size {text!r}")


def ssl_enabled(parsed: dict[str, Parsed], cluster: PostgresCluster | None = None) -> bool:
    if cluster is not None and cluster.spec.tls.enabled:
        return True
    return parsed.get("ssl", Parsed("off")).text == "on"


def validate_cluster(cluster: PostgresCluster) -> list[str]:
    """Every problem in the document's PostgreSQL parts, as `field.path: problem; fix`; [] when fine."""
    errors = check_version(cluster)
    if errors:
        return errors
    parsed, problems = check_parameters(cluster)
    errors += problems
    errors += validate_rules(list(cluster.spec.postgres.hba), ssl_enabled(parsed, cluster))[1]
    return errors


def config_warnings(cluster: PostgresCluster) -> list[str]:
    """What the PostgreSQL parts allow but give something up for; shown by validate/up, never fatal."""
    parsed, _ = check_parameters(cluster)
    return rule_warnings(list(cluster.spec.postgres.hba), ssl_enabled(parsed, cluster))


def validate_document(checked: DocumentCheck, installed: bool = False) -> list[str]:
    """Every problem in one pass: the document's own and, on the parts it holds correctly, the PostgreSQL
    ones (parameters, hba; with `installed`, preloaded libraries where the binaries are)."""
    errors = list(checked.errors)
    cluster = checked.cluster
    if cluster is None or not checked.kept("spec.postgres.version"):
        return errors  # the catalogue to check parameters against is unknown
    errors += validate_cluster(cluster)
    if installed:
        errors += missing_libraries(cluster)
    return errors
