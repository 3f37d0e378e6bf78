"""pgkeel command line: thin wrappers over the packages, no logic of its own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pgkeel.spec import SpecError, load_cluster

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Highly available PostgreSQL, anywhere.")
render_app = typer.Typer(no_args_is_help=True, help="Render configuration or manifests from a cluster document.")
app.add_typer(render_app, name="render")
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)

FileOpt = Annotated[Path, typer.Option("-f", "--file", help="PostgresCluster YAML document.")]
DirOpt = Annotated[Path, typer.Option("--dir", help="Directory of the local cluster.")]
DEFAULT_DOC = Path("examples/cluster.yaml")
DEFAULT_DIR = Path(".pgkeel")


def _fail(lines: list[str], title: str = "error") -> None:
    err.print(f"[bold red]{title}[/]")
    for line in lines:
        err.print(f"  {line}", markup=False, highlight=False)
    raise typer.Exit(1)


def _load_valid(path: Path):  # type: ignore[no-untyped-def]
    """Load and fully validate a document (spec and PostgreSQL parameters); exit 1 listing every error."""
    from pgkeel.pgconf import validate_cluster

    try:
        cluster = load_cluster(path)
    except SpecError as exc:
        _fail(exc.errors, f"{path}: {len(exc.errors)} problem(s)")
    problems = validate_cluster(cluster)
    if problems:
        _fail(problems, f"{path}: {len(problems)} problem(s)")
    return cluster


@app.command()
def validate(file: FileOpt) -> None:
    """Check a cluster document; exit 0 when valid, 1 with every error listed."""
    cluster = _load_valid(file)
    console.print(f"{file}: valid ({cluster.name}, {cluster.spec.instances} instances)")


@render_app.command("config")
def render_config_cmd(
    file: FileOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for postgresql.conf and pg_hba.conf.")],
    config_dir: Annotated[str, typer.Option(help="Where the files live at run time (hba_file points there).")] = (
        "/etc/postgresql"
    ),
) -> None:
    """Write DIR/postgresql.conf and DIR/pg_hba.conf."""
    from pgkeel.pgconf import render_config

    cluster = _load_valid(file)
    rendered = render_config(cluster, config_dir=config_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "postgresql.conf").write_text(rendered.postgresql_conf)
    (output / "pg_hba.conf").write_text(rendered.pg_hba_conf)
    console.print(f"wrote {output / 'postgresql.conf'} and {output / 'pg_hba.conf'}")


@app.command()
def explain(file: FileOpt, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every parameter pgkeel sets, with its source, reason and context."""
    from pgkeel.pgconf import explain as explain_settings

    cluster = _load_valid(file)
    settings = explain_settings(cluster)
    if as_json:
        print(json.dumps([s.as_dict() for s in settings], indent=1))
        return
    table = Table("name", "value", "source", "context", "reason")
    for s in settings:
        table.add_row(s.name, s.value, s.source, s.context, s.reason)
    console.print(table)


@app.command()
def up(
    file: FileOpt = DEFAULT_DOC,
    directory: DirOpt = DEFAULT_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for all members to stream.")] = 120.0,
) -> None:
    """Start every node of the document on this machine; start only missing ones on an existing dir."""
    from pgkeel.local import LocalCluster

    _load_valid(file)
    local = LocalCluster(directory)
    try:
        with console.status("starting…") as spinner:
            status = local.up(file, timeout=timeout, progress=lambda text: spinner.update(text))
    except (ValueError, TimeoutError) as exc:
        _fail([str(exc)])
    _print_status(status)
    console.print("\n[bold]write:[/]", status["dsn_rw"], highlight=False, soft_wrap=True)
    console.print("[bold]read:[/] ", status["dsn_ro"], highlight=False, soft_wrap=True)
    console.print(f"\npsql: [cyan]pgkeel psql --dir {directory}[/]   stop: [cyan]pgkeel down --dir {directory}[/]")


def _print_status(status: dict) -> None:  # type: ignore[type-arg]
    from pgkeel.instance.lsn import format_lsn

    table = Table("name", "role", "state", "timeline", "lsn", "lag", "sync", "leader", "port")
    for column in table.columns:
        column.no_wrap = True
    for m in status["members"]:
        table.add_row(
            m["name"],
            m["role"],
            m["state"],
            str(m["timeline"] or ""),
            format_lsn(m["lsn"]) if m["lsn"] is not None else "",
            str(m["lag_bytes"] if m["lag_bytes"] is not None else ""),
            m["sync"] or "",
            "*" if m["name"] == status["leader"] else "",
            str(m["port"]),
        )
    console.print(table)


def _local(directory: Path):  # type: ignore[no-untyped-def]
    from pgkeel.local import LocalCluster

    local = LocalCluster(directory)
    if not local.exists():
        _fail([f"no local cluster in {directory}; start one with `pgkeel up`"])
    return local


@app.command()
def status(directory: DirOpt = DEFAULT_DIR, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Members of the local cluster: role, state, timeline, LSN, lag, sync, lease holder."""
    st = _local(directory).status()
    if as_json:
        print(json.dumps(st, indent=1))
    else:
        _print_status(st)


@app.command()
def switchover(
    directory: DirOpt = DEFAULT_DIR,
    to: Annotated[str | None, typer.Option("--to", help="Member to promote (default: the best replica).")] = None,
) -> None:
    """Planned handover of the primary role with no lost writes."""
    try:
        st = _local(directory).switchover(to)
    except (RuntimeError, TimeoutError) as exc:
        _fail([str(exc)])
    console.print(f"leader is now {st['leader']}")


@app.command()
def failover(
    to: Annotated[str, typer.Option("--to", help="Member to promote.")],
    directory: DirOpt = DEFAULT_DIR,
    force: Annotated[bool, typer.Option(help="Promote even if acknowledged commits could be lost.")] = False,
) -> None:
    """Manual failover to a named member (--force overrides the quorum check)."""
    try:
        result = _local(directory).failover(to, force)
    except RuntimeError as exc:
        _fail([str(exc)])
    console.print(f"requested: {result['accepted']}")


@app.command()
def psql(
    name: Annotated[str | None, typer.Argument(help="Member to connect to (default: the primary).")] = None,
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Open psql on the primary (or on a named member)."""
    local = _local(directory)
    dsn = local.node_dsn(name) if name else local.dsn(True)
    os.execvp("psql", ["psql", dsn])


@app.command()
def down(
    directory: DirOpt = DEFAULT_DIR, purge: Annotated[bool, typer.Option(help="Also delete all data.")] = False
) -> None:
    """Stop every process of the local cluster (by PID); data is kept unless --purge."""
    stopped = _local(directory).down(purge=purge)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}" + (" (data deleted)" if purge else ""))


@app.command()
def agent(config: Annotated[Path, typer.Option("--config", help="Agent configuration (JSON).")]) -> None:
    """Run one node agent in the foreground (what `pgkeel up` starts for each node)."""
    from pgkeel.ha.config import AgentConfig
    from pgkeel.ha.run import run_agent

    cfg = AgentConfig.model_validate_json(config.read_text())
    sys.exit(run_agent(cfg))


def main() -> None:
    app()
