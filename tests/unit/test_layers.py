"""The import table of docs/ARCHITECTURE.md, enforced: each package imports only what its row allows.

Also: no function-level imports of our own modules (they hide cycles), except in the CLI (each
command loads only what it runs) and the one documented in dcs/__init__.py (the kubernetes client
costs ~0.3 s to import, which sqlite and etcd users should not pay). Imports under TYPE_CHECKING are
for annotations only and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "src" / "pgkeel"

ALLOWED: dict[str, set[str]] = {
    "document": set(),
    "dcs": set(),
    "pgconf": {"document"},
    "instance": set(),
    "tls": {"instance"},
    "backup": {"document", "instance"},
    "k8s": {"document", "pgconf", "dcs", "tls", "backup"},  # pgbackrest.conf and its secrets: backup's renderer
    "ha": {"dcs", "instance", "document", "tls", "backup"},
    "api": {"ha", "dcs"},
    "agent": {"ha", "api", "dcs", "instance", "document", "k8s", "backup"},
    "local": {"ha", "instance", "pgconf", "document", "tls", "backup"},
    "lab": {"local", "ha", "instance", "pgconf", "document"},
    "sim": {"ha", "dcs", "instance"},
    # node: pgbackrest.conf, as local writes it
    "node": {"agent", "ha", "dcs", "instance", "document", "pgconf", "tls", "k8s", "backup"},
    "remote": {"api", "ha", "dcs", "document", "node", "k8s"},
    "cli": {"agent", "backup", "document", "ha", "instance", "k8s", "lab", "local", "node", "pgconf", "remote", "sim"},
    "__main__": {"cli"},
    "__init__": set(),
}
NESTED_ALLOWED = {("dcs/__init__.py", "pgkeel.dcs.k8s_client"), ("dcs/__init__.py", "pgkeel.dcs.kubernetes")}


def _package(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            hidden |= {id(n) for n in ast.walk(node)}
    return hidden


def _imports(tree: ast.Module) -> list[tuple[ast.stmt, str]]:
    found: list[tuple[ast.stmt, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pgkeel"):
            found.append((node, node.module))
        elif isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names if a.name.startswith("pgkeel")]
    return found


def test_every_package_is_in_the_table() -> None:
    packages = {_package(f.relative_to(ROOT)) for f in ROOT.rglob("*.py")}
    assert packages <= set(ALLOWED), f"packages missing from the import table: {packages - set(ALLOWED)}"


def test_imports_follow_the_table() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        package = _package(rel)
        tree = ast.parse(path.read_text())
        hidden = _type_checking_nodes(tree)
        for node, module in _imports(tree):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else "pgkeel"
            if id(node) in hidden or target == package:
                continue
            if target not in ALLOWED[package]:
                wrong.append(f"{rel}:{node.lineno} imports {module} ({package} may import {sorted(ALLOWED[package])})")
    assert not wrong, "\n".join(wrong)


def test_no_function_level_imports_of_our_modules() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.name == "cli.py" and len(rel.parts) == 1:
            continue
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        hidden = _type_checking_nodes(tree)
        for node, module in _imports(tree):
            if id(node) in top or id(node) in hidden or (str(rel), module) in NESTED_ALLOWED:
                continue
            wrong.append(f"{rel}:{node.lineno} imports {module} inside a function")
    assert not wrong, "\n".join(wrong)


def test_no_one_letter_module_aliases() -> None:
    """`from pgkeel.ha import plans as p` hides what is being called: names say what the thing is."""
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                wrong += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {a.name} as {a.asname}"
                    for a in node.names
                    if a.asname is not None and len(a.asname) == 1
                ]
    assert not wrong, "\n".join(wrong)

