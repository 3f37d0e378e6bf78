#!/usr/bin/env python3
"""Generate pgkeel's GUC catalogue for one PostgreSQL major version.

Source of truth is the server binary itself:
  1. `postgres --describe-config` gives name, context, type, reset value, min and max of every
     parameter that may appear in postgresql.conf (it hides developer options);
  2. a throwaway single-user server (initdb in a temp dir, `postgres --single`) dumps
     `pg_settings`, which adds what --describe-config lacks: unit, enum values, and the developer
     options it hides.

Usage (as root the binaries are run as the `postgres` OS user):
    scripts/gen_guc_catalogue.py                                  # /usr/lib/postgresql/15/bin
    scripts/gen_guc_catalogue.py --bindir /path/to/pg16/bin       # any major; writes pg16.json
Output: src/pgkeel/pgconf/catalogue/pg<major>.json (sorted, stable, reviewable diffs).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "src" / "pgkeel" / "pgconf" / "catalogue"
_TYPES = {"BOOLEAN": "bool", "INTEGER": "integer", "REAL": "real", "STRING": "string", "ENUM": "enum"}


def _run(cmd: list[str], stdin: str | None = None) -> str:
    """Run a server binary; as root, as the postgres OS user (PostgreSQL refuses root)."""
    kwargs: dict[str, Any] = {}
    if os.geteuid() == 0:
        kwargs = {"user": "postgres", "group": "postgres"}
    env = dict(os.environ, LC_ALL="C", LANG="C")
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, check=False, **kwargs)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def _number(text: str) -> int | float | None:
    if text == "":
        return None
    value = float(text)
    return int(value) if value.is_integer() and "e" not in text.lower() and "." not in text else value


def describe_config(postgres: str) -> dict[str, dict[str, Any]]:
    """Parse `postgres --describe-config`: tab-separated, one parameter per line."""
    params: dict[str, dict[str, Any]] = {}
    for line in _run([postgres, "--describe-config"]).splitlines():
        fields = line.split("\t")
        name, context, group, vartype, reset, low, high, short = fields[:8]
        entry: dict[str, Any] = {
            "vartype": _TYPES[vartype],
            "context": context,
            "category": group,
            "short_desc": short,
            "reset": reset,
        }
        if entry["vartype"] in ("integer", "real"):
            entry["min"], entry["max"] = _number(low), _number(high)
        params[name] = entry
    return params


def dump_pg_settings(bindir: Path) -> list[dict[str, str]]:
    """`pg_settings` of a fresh single-user server: units, enum values, hidden options."""
    tmp = Path(tempfile.mkdtemp(prefix="pgkeel-guc-"))
    try:
        os.chmod(tmp, 0o755)
        data = tmp / "data"
        out = tmp / "settings.csv"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--no-sync", "-A", "trust"])
        query = (
            "COPY (SELECT name, vartype, context, unit, min_val, max_val, enumvals, boot_val, category, short_desc "
            f"FROM pg_settings ORDER BY name) TO '{out}' WITH (FORMAT csv, HEADER true);\n"
        )
        _run([str(bindir / "postgres"), "--single", "-D", str(data), "-j", "postgres"], stdin=query)
        return list(csv.DictReader(io.StringIO(out.read_text())))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _enumvals(text: str) -> list[str] | None:
    if not text:
        return None
    inner = text.strip("{}")
    return [v.strip('"') for v in next(csv.reader([inner]))] if inner else []


def build(bindir: Path) -> dict[str, Any]:
    postgres = str(bindir / "postgres")
    version_line = _run([postgres, "--version"]).strip()
    version = re.search(r"\(PostgreSQL\) (\d+)", version_line)
    if not version:
        sys.exit(f"cannot read a version from {version_line!r}")
    major = int(version.group(1))
    described = describe_config(postgres)
    catalogue: dict[str, dict[str, Any]] = {}
    for row in dump_pg_settings(bindir):
        name = row["name"]
        desc = described.get(name, {})
        vartype = row["vartype"]
        if desc and desc["vartype"] != vartype:
            sys.exit(f"{name}: --describe-config says {desc['vartype']}, pg_settings says {vartype}")
        entry: dict[str, Any] = {
            "vartype": vartype,
            "context": desc.get("context", row["context"]),
            "unit": row["unit"] or None,
            "min": desc.get("min", _number(row["min_val"])) if vartype in ("integer", "real") else None,
            "max": desc.get("max", _number(row["max_val"])) if vartype in ("integer", "real") else None,
            "enumvals": _enumvals(row["enumvals"]),
            "default": row["boot_val"],
            "category": row["category"],
            "short_desc": row["short_desc"],
            "described": bool(desc),
        }
        catalogue[name] = entry
    missing = sorted(set(described) - set(catalogue))
    if missing:
        sys.exit(f"in --describe-config but not in pg_settings: {missing}")
    return {
        "major": major,
        "server_version": version_line,
        "generated_by": "scripts/gen_guc_catalogue.py (postgres --describe-config + pg_settings)",
        "parameters": dict(sorted(catalogue.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bindir", type=Path, default=Path("/usr/lib/postgresql/15/bin"))
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    doc = build(args.bindir.resolve())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"pg{doc['major']}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"{path}: {len(doc['parameters'])} parameters from {doc['server_version']}")


if __name__ == "__main__":
    main()
