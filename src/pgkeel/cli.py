"""pgkeel command line: thin wrappers over the packages, no logic of its own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pgkeel.document import PostgresCluster, SpecError, load_cluster

if TYPE_CHECKING:
    from pgkeel.local import LocalCluster

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


def _load_valid(path: Path) -> PostgresCluster:
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
    for warning in cluster.spec.warnings():
        err.print(f"[yellow]warning[/] {warning}", highlight=False)
    console.print(f"{file}: valid ({cluster.name}, {cluster.spec.instances} instances)")


@app.command()
def rules(markdown: Annotated[bool, typer.Option("--markdown", help="Print docs/HA-RULES.md.")] = False) -> None:
    """Print the HA rule table: the order in which the agent's decisions are tried (first match wins)."""
    from pgkeel.ha.rules import rules_markdown, table

    if markdown:
        sys.stdout.write(rules_markdown())
        return
    grid = Table("rule", "why", show_lines=False)
    for name, why in table():
        grid.add_row(name, why)
    console.print(grid)


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


OutOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout.")]


@render_app.command("k8s")
def render_k8s_cmd(
    file: FileOpt,
    image: Annotated[str, typer.Option(help="Container image of postgres + pgkeel.")] = "ghcr.io/pgkeel/pgkeel:0.1.0",
    output: OutOpt = None,
    with_secrets: Annotated[
        bool, typer.Option("--secrets/--no-secrets", help="Include a Secret with NEW random passwords.")
    ] = True,
    network_policy: Annotated[bool, typer.Option("--network-policy/--no-network-policy")] = True,
) -> None:
    """Kubernetes manifests for `kubectl apply -f -` (after bootstrap, re-render with --no-secrets)."""
    from pgkeel.k8s.manifests import dump_yaml, render_manifests

    cluster = _load_valid(file)
    docs = render_manifests(cluster, image, include_secret=with_secrets, include_network_policy=network_policy)
    if "samenet" in cluster.spec.network.allowed_cidrs:
        err.print("warning: spec.network.allowedCidrs has `samenet`: on CNIs that give pods a /32 or a per-node "
                  "subnet, peers on other nodes are refused; list the pod CIDR instead", markup=False)
    _write_or_print(dump_yaml(docs), output)


@render_app.command("crd")
def render_crd_cmd(output: OutOpt = None) -> None:
    """The PostgresCluster CustomResourceDefinition, its schema generated from the model."""
    from pgkeel.k8s.crd import crd_manifest
    from pgkeel.k8s.manifests import dump_yaml

    _write_or_print(dump_yaml([crd_manifest()]), output)


def _write_or_print(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


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
    from pgkeel.local.cluster import AgentExited
    from pgkeel.local.runtime import place_cluster_dir

    for warning in _load_valid(file).spec.warnings():
        err.print(f"[yellow]warning[/] {warning}", highlight=False)
    try:
        directory, moved = place_cluster_dir(directory, default=directory == DEFAULT_DIR)
    except ValueError as exc:
        _fail([str(exc)])
    if moved:
        err.print(f"[yellow]note[/] {moved}", highlight=False)
    local = LocalCluster(directory)
    try:
        with console.status("starting…") as spinner:
            status = local.up(file, timeout=timeout, progress=lambda text: spinner.update(text))
    except (ValueError, TimeoutError, AgentExited) as exc:
        _fail([str(exc)])
    _print_status(status)
    console.print("\n[bold]write:[/]", status["dsn_rw"], highlight=False, soft_wrap=True)
    console.print("[bold]read:[/] ", status["dsn_ro"], highlight=False, soft_wrap=True)
    me = sys.argv[0] if sys.argv and sys.argv[0].endswith("pgkeel") else "pgkeel"
    console.print(f"\npsql: [cyan]{me} psql --dir {directory}[/]   stop: [cyan]{me} down --dir {directory}[/]")


def _print_status(status: dict[str, Any]) -> None:
    from pgkeel.instance.lsn import format_lsn

    table = Table("name", "role", "state", "timeline", "lsn", "lag", "sync", "leader", "port", "cert expires")
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
            (m.get("cert_not_after") or "")[:10],
        )
    console.print(table)


def _local(directory: Path) -> LocalCluster:
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
def agent(
    config: Annotated[Path | None, typer.Option("--config", help="Agent configuration (JSON).")] = None,
    kubernetes: Annotated[bool, typer.Option("--kubernetes", help="In a pod: configure from the environment.")] = False,
) -> None:
    """Run one node agent in the foreground (what `pgkeel up` starts for each node, or a pod's entrypoint)."""
    from pgkeel.agent.run import run_agent
    from pgkeel.ha.config import AgentConfig

    if kubernetes == (config is not None):
        _fail(["give exactly one of --config FILE or --kubernetes"])
    if kubernetes:
        from pgkeel.agent.from_env import config_from_env, write_passfile
        from pgkeel.instance import drop_privileges

        drop_privileges()  # first, so the pgpass file belongs to the user postgres runs as
        try:
            cfg = config_from_env()
            write_passfile(cfg)
        except (ValueError, OSError, SpecError) as exc:
            _fail([str(exc)], "cannot configure the agent from the pod's environment")
    else:
        assert config is not None
        cfg = AgentConfig.model_validate_json(config.read_text())
    sys.exit(run_agent(cfg))


# --- bench: the reliability lab (pgkeel.lab) ------------------------------------------------------
FAULT_HELP = (
    "kill-primary, kill-postgres, kill-agent, pause-primary, partition-primary, switchover, "
    "kill-primary-and-replica, absent-replica or kill-bootstrap."
)
bench_app = typer.Typer(no_args_is_help=True, help="Reliability lab: faults on a cluster of network namespaces.")
app.add_typer(bench_app, name="bench")


@bench_app.command("failover")
def bench_failover(
    fault: Annotated[str, typer.Option(help=FAULT_HELP)],
    mode: Annotated[str, typer.Option(help="Replication mode: async or quorum.")] = "quorum",
    trials: Annotated[int, typer.Option(min=1)] = 5,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write results here (after every trial).")] = None,
    fresh: Annotated[bool, typer.Option(help="A new cluster for every trial (default: one per run).")] = False,
) -> None:
    """Inject one fault per trial under a steady workload; print per-trial figures and median/min/max."""
    from pgkeel.lab.faults import FAULTS
    from pgkeel.lab.trial import TrialResult, report, run_bench, write_json

    if fault not in FAULTS or mode not in ("async", "quorum"):
        _fail([f"--fault must be one of {', '.join(FAULTS)}; --mode async or quorum"])
    if os.geteuid() != 0:
        _fail(["the lab creates network namespaces: run as root"])
    done: list[TrialResult] = []

    def progress(n: int, r: TrialResult) -> None:
        done.append(r)
        f = [f"{v:.2f}" if isinstance(v, float) else "-" for v in (r.outage_s, r.detect_s, r.promote_s, r.rejoin_s)]
        console.print(
            f"trial {n}/{trials}: outage {f[0]} s  detect {f[1]} s  promote {f[2]} s  rejoin {f[3]} s  "
            f"lost_acked {r.lost_acked}  split_brain {r.split_brain_windows}  phantoms {r.phantoms}"
            + (f"  [red]{r.error}[/]" if r.error else ""),
            highlight=False,
        )
        if json_file:
            write_json(report(fault, mode, done), json_file)

    data = run_bench(fault, mode, trials, fresh=fresh, progress=progress)
    table = Table("figure", "median", "min", "max", title=f"{fault} / {mode} / {trials} trials")
    for key, st in data["stats"].items():
        table.add_row(key, *(f"{st[k]:.3f}" if st[k] is not None else "-" for k in ("median", "min", "max")))
    console.print(table)
    console.print(
        f"lost acknowledged writes: {data['lost_acked_total']}   split-brain windows: "
        f"{data['split_brain_windows_total']}   phantom ids: {data['phantoms_total']}   "
        f"rejoin failures: {data['rejoin_failures']}"
    )
    if json_file:
        write_json(data, json_file)


@bench_app.command("bootstrap")
def bench_bootstrap(
    size: Annotated[str, typer.Option(help="Data to load before cloning, e.g. 1GiB or 512Mi.")] = "1GiB",
    json_file: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """Time to clone a replica vs `cp -a` of the same data directory (the physical limit), as a ratio."""
    from pgkeel.document.quantity import parse_bytes
    from pgkeel.lab.bootstrap import run_bootstrap

    result = run_bootstrap(parse_bytes(size.removesuffix("B")), progress=lambda text: console.print(text))
    console.print(
        f"data dir {result['data_dir_bytes'] / 2**30:.2f} GiB: clone {result['clone_s']:.1f} s "
        f"({result['clone_mib_s']:.0f} MiB/s), cp -a {result['cp_s']:.1f} s ({result['cp_mib_s']:.0f} MiB/s), "
        f"ratio {result['ratio']:.2f}"
    )
    if json_file:
        json_file.write_text(json.dumps(result, indent=1) + "\n")


@app.command("sim")
def sim_cmd(
    seed: Annotated[int | None, typer.Option(help="Run one seed (with --transcript to replay it).")] = None,
    seeds: Annotated[int, typer.Option(help="Run seeds 0..N-1 and print figures.")] = 100,
    nodes: Annotated[int, typer.Option(help="1, 3 or 5 nodes.")] = 3,
    mode: Annotated[str, typer.Option(help="quorum or async.")] = "quorum",
    fence: Annotated[str, typer.Option(help="extension, watchdog or none (every node).")] = "extension",
    steps: Annotated[int, typer.Option(help="Simulated time with faults, in 0.1 s steps (a tail follows).")] = 600,
    transcript: Annotated[bool, typer.Option("--transcript", help="Print one line per decision and fault.")] = False,
    scenario: Annotated[str | None, typer.Option(help="Run a named scenario (pgkeel.sim.scenarios).")] = None,
) -> None:
    """Deterministic multi-node simulation of the real HA rules under seeded faults; exit 1 on a violation."""
    from pgkeel.sim.cli import main as sim_main

    code = sim_main(seed, seeds, nodes, mode, fence, steps, transcript, scenario, print)
    raise typer.Exit(code)


def main() -> None:
    app()
