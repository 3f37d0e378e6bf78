"""pgkeel command line: thin wrappers over the packages, no logic of its own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pgkeel.document import PostgresCluster, SpecError, check_cluster_file

if TYPE_CHECKING:
    from pgkeel.local import LocalCluster
    from pgkeel.local.apply import ApplyPlan
    from pgkeel.local.scaling import Scaling
    from pgkeel.remote.cluster import RemoteCluster

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Highly available PostgreSQL, anywhere.")
render_app = typer.Typer(no_args_is_help=True, help="Render configuration or manifests from a cluster document.")
app.add_typer(render_app, name="render")
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True)

FileOpt = Annotated[Path, typer.Option("-f", "--file", help="PostgresCluster YAML document.")]
DirOpt = Annotated[Path, typer.Option("--dir", help="Directory of the local cluster.")]
DEFAULT_DOC = Path("examples/cluster.yaml")
DEFAULT_DIR = Path(".pgkeel")


def _fail(lines: list[str], title: str = "error") -> NoReturn:
    if title == "error" and len(lines) == 1:  # one problem, one line (never wrapped: scripts grep it)
        err.print(f"[bold red]error:[/] {escape(lines[0])}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    err.print(f"[bold red]{title}[/]")
    for line in lines:
        err.print(f"  {line}", markup=False, highlight=False)
    raise typer.Exit(1)


def _load_valid(path: Path, installed: bool = False) -> PostgresCluster:
    """Load and fully validate a document (spec, parameters, hba; with `installed`, the preloaded libraries
    where the binaries are); exit 1 listing every error of all of them at once."""
    from pgkeel.pgconf import validate_document

    checked = check_cluster_file(path)
    problems = validate_document(checked, installed=installed)
    if problems or checked.cluster is None:
        _fail(problems, f"{path}: {len(problems)} problem(s)")
    assert checked.cluster is not None
    return checked.cluster


def _warn(cluster: PostgresCluster) -> None:
    from pgkeel.pgconf import config_warnings

    for warning in cluster.spec.warnings() + config_warnings(cluster):
        err.print(f"[yellow]warning[/] {warning}", highlight=False)


@app.command()
def validate(file: FileOpt) -> None:
    """Check a cluster document; exit 0 when valid, 1 with every error listed."""
    cluster = _load_valid(file, installed=True)
    _warn(cluster)
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
    image: Annotated[str, typer.Option(help="Container image of postgres + pgkeel: build it (`make image`), "
                                       "push it to your registry and name it here.")] = "",
    output: OutOpt = None,
    with_secrets: Annotated[
        bool, typer.Option("--secrets/--no-secrets", hidden=True, help="Gone: see `pgkeel render secrets`.")
    ] = False,
    network_policy: Annotated[bool, typer.Option("--network-policy/--no-network-policy")] = True,
) -> None:
    """Kubernetes manifests for `kubectl apply -f -`, as often as you like: no Secrets (`render secrets`, once)."""
    from pgkeel.k8s import layout
    from pgkeel.k8s.manifests import dump_yaml, kubernetes_problems, render_manifests

    if with_secrets:  # the old flag: fresh credentials mixed into an output meant to be re-applied
        _fail(["render k8s no longer renders Secrets, so applying it again never changes a credential;",
               "create them once with: pgkeel render secrets -f FILE | kubectl create -f -"])
    cluster = _load_valid(file)
    problems = kubernetes_problems(cluster)
    if problems:
        _fail(problems, f"{file}: cannot run on Kubernetes")
    if not image:  # the default names no published image: say so, or the pods sit in ImagePullBackOff
        image = layout.DEFAULT_IMAGE
        err.print(f"warning: no --image: the manifests name {image}, which is not published; build the image "
                  "(make image), push it and pass --image REGISTRY/pgkeel:TAG (docs/kubernetes.md)", markup=False)
    docs = render_manifests(cluster, image, include_network_policy=network_policy)
    if "samenet" in cluster.spec.network.allowed_cidrs:
        err.print("warning: spec.network.allowedCidrs has `samenet`: on CNIs that give pods a /32 or a per-node "
                  "subnet, peers on other nodes are refused; list the pod CIDR instead", markup=False)
    _write_or_print(dump_yaml(docs), output)


CaDirOpt = Annotated[
    Path | None, typer.Option("--ca-dir", help="Where the CA lives on this machine (ca.crt, ca.key 0600). "
                              "Default: ./NAME-ca")
]
DomainOpt = Annotated[str, typer.Option("--cluster-domain", help="The Kubernetes cluster's DNS domain.")]


def _secrets_target(file: Path, ca_dir: Path | None, domain: str) -> tuple[PostgresCluster, Path]:
    import re

    cluster = _load_valid(file)
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*", domain):
        _fail([f"--cluster-domain {domain!r} is not a DNS name; give the cluster's domain, e.g. cluster.local"])
    return cluster, ca_dir or Path(f"{cluster.name}-ca")


def _write_private_or_print(text: str, output: Path | None) -> None:
    """Secrets on stdout (for a pipe) or in a 0600 file, never a world-readable one."""
    from pgkeel.instance.files import atomic_write

    if output is None:
        sys.stdout.write(text)
        return
    atomic_write(output, text, mode=0o600)
    err.print(f"wrote {output} (mode 0600)")


@render_app.command("secrets")
def render_secrets_cmd(
    file: FileOpt,
    ca_dir: CaDirOpt = None,
    output: OutOpt = None,
    domain: DomainOpt = "cluster.local",
) -> None:
    """Run ONCE per cluster: new passwords, API token and CA; the Secrets for `kubectl create -f -`.

    The CA key is written to CA_DIR/ca.key (0600) and nowhere else: the pods get only the CA
    certificate and their own certificates. Refuses when CA_DIR already holds a CA.
    """
    from pgkeel.k8s.manifests import dump_yaml
    from pgkeel.k8s.secrets import create_cluster_ca, render_secrets

    cluster, ca_dir = _secrets_target(file, ca_dir, domain)
    _backup_secret_or_fail(cluster)  # before the CA is made: a missing key file must not leave a CA behind
    ca = None
    if cluster.spec.tls.enabled:
        try:
            ca = create_cluster_ca(cluster, ca_dir)
        except FileExistsError as exc:
            _fail([f"{exc}: the Secrets of {cluster.name} were made already (this command runs once).",
                   f"to re-issue the pod certificates with that CA: pgkeel render certs -f {file} --ca-dir {ca_dir}",
                   "if creating them failed (nothing was created in the cluster), or to start a new cluster, "
                   "move that directory away and run this again"])
        err.print(f"wrote {ca_dir}/ca.crt and {ca_dir}/ca.key (mode 0600): keep the key safe, "
                  "it never goes into the cluster", markup=False, highlight=False)
    _write_private_or_print(dump_yaml(render_secrets(cluster, ca, domain=domain)), output)


def _backup_secret_or_fail(cluster: PostgresCluster) -> dict[str, Any] | None:
    from pgkeel.backup import SecretFileError
    from pgkeel.k8s.secrets import backup_secret

    try:
        return backup_secret(cluster)
    except SecretFileError as exc:
        _fail([str(exc)])


@render_app.command("backup-secret")
def render_backup_secret_cmd(file: FileOpt, output: OutOpt = None) -> None:
    """spec.backup's S3 keys and passphrase as the Secret `<name>-backup`, read from the files the document names.

    `render secrets` includes it; this one is for spec.backup added later or rotated keys (`kubectl apply -f -`,
    then delete the pods one at a time: they read it when they start)."""
    from pgkeel.k8s.manifests import dump_yaml

    secret = _backup_secret_or_fail(_load_valid(file))
    if secret is None:
        _fail(["spec.backup needs no secret (no s3 repository, no encryption), or is not set"])
    _write_private_or_print(dump_yaml([secret]), output)


@render_app.command("certs")
def render_certs_cmd(
    file: FileOpt,
    ca_dir: CaDirOpt = None,
    output: OutOpt = None,
    domain: DomainOpt = "cluster.local",
) -> None:
    """Issue every pod's certificate again with the CA of `render secrets` (renewal, more instances)."""
    from pgkeel.k8s.manifests import dump_yaml
    from pgkeel.k8s.secrets import certs_secret, load_cluster_ca

    cluster, ca_dir = _secrets_target(file, ca_dir, domain)
    if not cluster.spec.tls.enabled:
        _fail(["spec.tls.enabled is false: the pods use no certificates"])
    try:
        ca = load_cluster_ca(ca_dir)
    except (OSError, ValueError) as exc:
        _fail([f"cannot read the CA in {ca_dir}: {exc}", "give --ca-dir, the directory `render secrets` wrote"])
    _write_private_or_print(dump_yaml([certs_secret(cluster, ca, domain)]), output)


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
    file: Annotated[Path | None, typer.Option(
        "-f", "--file", help="PostgresCluster YAML document. Default: the cluster's own (DIR/cluster.yaml); "
        f"{DEFAULT_DOC} for a new cluster.")] = None,
    directory: DirOpt = DEFAULT_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for all members to stream.")] = 120.0,
    apply: Annotated[bool, typer.Option(
        "--apply", help="With -f on an existing cluster: replace its document by FILE (shown as a diff otherwise).")
    ] = False,
) -> None:
    """Start every node on this machine; on an existing dir, start only missing ones with the cluster's own document."""
    from pgkeel.local import LocalCluster
    from pgkeel.local.cluster import AgentExited
    from pgkeel.local.restore import RestoreError
    from pgkeel.local.runtime import place_cluster_dir

    if apply and file is None:
        _fail(["--apply replaces the cluster's document by another: give it with -f FILE"])
    document = LocalCluster(directory).document_for_up(file, DEFAULT_DOC)
    _warn(_load_valid(document, installed=True))
    try:
        directory, moved = place_cluster_dir(directory, default=directory == DEFAULT_DIR)
    except ValueError as exc:
        _fail([str(exc)])
    if moved:
        err.print(f"[yellow]note[/] {moved}", highlight=False)
    local = LocalCluster(directory)
    try:
        with console.status("starting…") as spinner:
            status = local.up(document, timeout=timeout, progress=lambda text: spinner.update(text), apply=apply)
    except (ValueError, TimeoutError, AgentExited, RestoreError) as exc:
        _fail(str(exc).splitlines())
    _print_status(status)
    console.print("\n[bold]write:[/]", status["dsn_rw"], highlight=False, soft_wrap=True)
    console.print("[bold]read:[/] ", status["dsn_ro"], highlight=False, soft_wrap=True)
    me = sys.argv[0] if sys.argv and sys.argv[0].endswith("pgkeel") else "pgkeel"
    console.print(f"\npsql: [cyan]{me} psql --dir {directory}[/]   stop: [cyan]{me} down --dir {directory}[/]")


def _print_status(status: dict[str, Any]) -> None:
    """A header for the cluster, then a row per member, as `patronictl list` prints them."""
    import re

    mb = 1 << 20

    def lag(value: int | None) -> str:
        return "" if value is None else f"{value / mb:.1f}"

    def last_error(text: str | None) -> str:
        """postgres' last two messages without their log prefix (the whole text is in --json)."""
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        said = [m.group(1) for m in map(re.compile(r"\b((?:LOG|FATAL|PANIC|ERROR|DETAIL|HINT):.*)").search, lines) if m]
        return " / ".join(said[-2:]) if said else (lines[-1] if lines else "")

    console.print(
        f"Cluster: {status.get('cluster')}  system identifier: {status.get('system_identifier') or '?'}  "
        f"mode: {status.get('mode') or '?'}  leader: {status.get('leader') or 'none'}  "
        f"paused: {_paused_text(status)}",
        highlight=False,
    )
    table = Table(
        "member", "host", "role", "state", "TL", "receive lag MB", "replay lag MB", "sync", "pending restart",
        "last error",
    )
    for column in table.columns[:3]:
        column.no_wrap = True
    for m in status["members"]:
        state = m["state"] + (" (replay paused)" if m.get("replay_paused") else "")
        table.add_row(
            m["name"] + (" *" if m["name"] == status["leader"] else ""),
            f"{m.get('host') or '127.0.0.1'}:{m['port']}" if m["port"] else "",  # remote: a member without a record
            m["role"],
            state,
            str(m["timeline"] or ""),
            lag(m.get("receive_lag_bytes")),
            lag(m.get("replay_lag_bytes")),
            m["sync"] or "",
            ", ".join(m.get("pending_restart") or []),
            last_error(m.get("last_error")),
        )
    console.print(table)
    request = status.get("switchover")
    if request:  # pending in the store (pgkeel.ha.records.SwitchoverRequest)
        when = f"at {_when(request['at'])}" if request.get("at") else "now"
        console.print(f"switchover pending: {request.get('source') or 'the leader'} → "
                      f"{request.get('target') or 'the best replica'} {when} (cancel: pgkeel switchover --cancel)",
                      highlight=False, soft_wrap=True)
    for m in status["members"]:  # spec.backup: the primary's archive (pgkeel.backup.archive_watch)
        if m.get("archive"):
            console.print(f"{m['name']}: {m['archive']['line']}", highlight=False, soft_wrap=True)
        if m.get("backups"):  # the leader's agent runs the schedule (pgkeel.agent.backups)
            console.print(f"backups ({m['name']}): {m['backups']['line']}", highlight=False, soft_wrap=True)


def _paused_text(status: dict[str, Any]) -> str:
    if not status.get("paused"):
        return "no"
    until = status.get("paused_until")
    return "yes" if until is None else f"yes (until {_when(until)})"


def _when(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _local(directory: Path) -> LocalCluster:
    from pgkeel.local import LocalCluster

    local = LocalCluster(directory)
    if not local.exists():
        _fail([f"no local cluster in {directory}; start one with `pgkeel up`"])
    return local


# --- remote control: the same commands against a cluster on other machines (pgkeel.remote) ---------------
ApiOpt = Annotated[list[str] | None, typer.Option(
    "--api", help="A member's API, https://HOST:8008; repeat it (or separate by commas) to try several in order.")]
CaOpt = Annotated[Path | None, typer.Option(
    "--ca", help="The cluster CA that signed the members' API certificates (ca.crt of a bundle).")]
TokenFileOpt = Annotated[Path | None, typer.Option(
    "--token-file", help="File holding the cluster's API token (api-token of a bundle); switchover and failover.")]
SecretsDirOpt = Annotated[Path | None, typer.Option(
    "--secrets", help="A member's bundle, or the `secrets init --out` DIR: --ca and --token-file from it.")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="etcd://HOST:2379[,HOST:2379…]/CLUSTER (etcds:// for TLS): read the store; no agent needed.")]
StoreCaOpt = Annotated[Path | None, typer.Option("--store-ca", help="CA of etcd's server certificates.")]
StoreCertOpt = Annotated[Path | None, typer.Option("--store-cert", help="Client certificate for etcd, if it asks.")]
StoreKeyOpt = Annotated[Path | None, typer.Option("--store-key", help="Private key of --store-cert.")]
StoreUserOpt = Annotated[str | None, typer.Option("--store-user", help="etcd user (auth on).")]
StorePasswordOpt = Annotated[Path | None, typer.Option(
    "--store-password-file", help="File whose first line is --store-user's password.")]
RemoteFileOpt = Annotated[Path | None, typer.Option(
    "-f", "--file", help="The cluster's document: spec.members and spec.store say where it runs.")]


def _remote(ctx: typer.Context) -> RemoteCluster | None:
    """The cluster on other machines the command's remote options name; None without any (the local one).

    Read from ctx.params: each command declares only the options it takes, and absent ones are None."""
    from pgkeel.remote.cluster import RemoteCluster
    from pgkeel.remote.target import RemoteOptions, TargetError, resolve

    given = ctx.params
    file = given.get("file")
    options = RemoteOptions(
        api=tuple(given.get("api") or ()), ca=given.get("ca"), token_file=given.get("token_file"),
        secrets=given.get("secrets"), store=given.get("store"), store_ca=given.get("store_ca"),
        store_cert=given.get("store_cert"), store_key=given.get("store_key"), store_user=given.get("store_user"),
        store_password_file=given.get("store_password_file"), document=_load_valid(file) if file else None,
    )
    if not options.given():
        return None
    try:
        return RemoteCluster(resolve(options))
    except TargetError as exc:
        _fail([str(exc)])


def _remote_call(call: Any, *args: Any) -> Any:
    """Run one remote read or request; its RemoteError is one line, never a traceback."""
    from pgkeel.remote.cluster import RemoteError

    try:
        return call(*args)
    except RemoteError as exc:
        _fail([str(exc)])


@app.command()
def status(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
    store: StoreOpt = None,
    store_ca: StoreCaOpt = None,
    store_cert: StoreCertOpt = None,
    store_key: StoreKeyOpt = None,
    store_user: StoreUserOpt = None,
    store_password_file: StorePasswordOpt = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON instead: {cluster, system_identifier, mode, paused, leader, dsn_rw, dsn_ro, members: "
            "[{name, host, port, role, state, timeline, lsn, receive_lsn, replay_lsn, receive_lag_bytes, "
            "replay_lag_bytes, replay_lag_seconds, replay_paused, lag_bytes (= replay lag), sync, pending_restart, "
            "start_failures, last_error, auto_conf_drift, version (pgkeel's), api_url, postgres_pid, agent_pid, "
            "cert_not_after}]}; "
            "LSNs and lags in bytes, null when unknown.",
        ),
    ] = False,
) -> None:
    """The cluster like `patronictl list`: name, system identifier, mode, leader, paused; then per member
    host:port, role, state, timeline, receive and replay lag in MB, sync, pending restart and the last error.

    The local cluster (--dir), or one on other machines: --api (any member; the next on failure), --store
    (no agent needed), or -f FILE (its members' APIs, then its store)."""
    from pgkeel.ha.status import cluster_summary, member_summary, parse_status

    remote = _remote(ctx)
    if remote is not None:
        st = _remote_call(remote.status)
        if as_json:
            print(json.dumps(st, indent=1))
        else:
            _print_status(st)
        return
    local = _local(directory)
    st = local.status()
    statuses = {m["name"]: parse_status(local.fetch(m["name"])) if m["agent_pid"] else None for m in st["members"]}
    for member in st["members"]:
        member.update(member_summary(statuses[member["name"]]))
    st = {**cluster_summary(local.cluster().name, statuses, st["leader"]), **st}
    if as_json:
        print(json.dumps(st, indent=1))
    else:
        _print_status(st)


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed without a terminal).")]
WaitOpt = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until the target leads, or return once the request is recorded.")
]
WaitTimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the new leader.")]


def _confirm(question: str, yes: bool) -> None:
    """Ask before a destructive step; without a terminal only --yes goes on (a script never hangs on a prompt)."""
    if yes:
        return
    if not sys.stdin.isatty():
        _fail([f"{question} stdin is not a terminal: pass --yes to confirm"])
    if not typer.confirm(question, default=False):
        _fail(["not confirmed; nothing changed"])


def _handed_over(local: LocalCluster | RemoteCluster, request: dict[str, Any], wait: bool, timeout: float) -> None:
    """Report a recorded request: at once with --no-wait, else once its target leads (exit 1 on timeout)."""
    target = request.get("to") or "the best replica"
    if not wait:
        console.print(f"requested: {request.get('from') or 'no leader'} → {target}", highlight=False)
        return
    try:
        st = local.wait_for_leader(request, timeout)
    except TimeoutError as exc:
        _fail([str(exc)])
    console.print(f"leader is now {st['leader']}")
    _print_status(st)


@app.command()
def switchover(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    to: Annotated[str | None, typer.Option("--to", help="Member to promote (default: the best replica).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="Schedule it: ISO 8601 time, UTC without an offset (2026-12-03T20:00), within 7 days; "
        "kept in the store, carried out by the leader then.")] = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="Remove the pending (scheduled) switchover.")] = False,
    wait: WaitOpt = True,
    timeout: WaitTimeoutOpt = 60.0,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Planned handover of the primary role with no lost writes; a refusal is printed at once (exit 1).

    --at schedules it (`pgkeel status` shows it; --cancel removes it). On other machines: through any
    member's API (--api or -f), with the API token (--token-file or --secrets)."""
    if cancel and (at is not None or to is not None):
        _fail(["--cancel removes the pending switchover: give it alone (no --to, no --at)"])
    when = _switchover_time(at) if at is not None else None
    remote = _remote(ctx)
    local: LocalCluster | RemoteCluster = remote if remote is not None else _local(directory)
    try:
        if cancel:
            removed = local.cancel_switchover()
            console.print(f"cancelled: {_request_text(removed)}" if removed else "no switchover pending: nothing "
                          "changed", highlight=False)
            return
        request = local.request_switchover(to, when)
    except RuntimeError as exc:  # RemoteError too: one line
        _fail([str(exc)])
    if when is not None:
        console.print(f"scheduled: {_request_text(request)} (cancel: pgkeel switchover --cancel)", highlight=False)
        return
    _handed_over(local, request, wait, timeout)


def _switchover_time(at: str) -> float:
    """--at as epoch seconds, refused here when in the past or too far ahead (the agent checks again)."""
    import time

    from pgkeel.ha.switchover_request import RequestRefused, check_time, parse_time

    try:
        when = parse_time(at)
        check_time(when, time.time(), force=False)
    except (ValueError, RequestRefused) as exc:
        _fail([f"--at {at}: {exc}"])
    return when


def _request_text(request: dict[str, Any]) -> str:
    at = request.get("at")
    return (f"{request.get('from') or 'the leader'} → {request.get('to') or 'the best replica'}"
            + (f" at {_when(at)}" if at else ""))


@app.command()
def failover(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Member to promote.")],
    directory: DirOpt = DEFAULT_DIR,
    force: Annotated[bool, typer.Option(help="Also with no leader: may lose acknowledged commits.")] = False,
    yes: YesOpt = False,
    wait: WaitOpt = True,
    timeout: WaitTimeoutOpt = 60.0,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Promote a named member now (asks first): with a leader, as a switchover; --force also without one.

    On other machines: through any member's API (--api or -f), with the API token (--token-file or --secrets)."""
    remote = _remote(ctx)
    local: LocalCluster | RemoteCluster = remote if remote is not None else _local(directory)
    leader = _remote_call(local.status)["leader"]
    question = f"Promote {to}, demoting the leader {leader}?" if leader else f"Promote {to} (no leader holds a lease)?"
    if force:
        question += " With --force acknowledged commits may be lost."
    _confirm(question, yes)
    try:
        answer = local.failover(to, force)
    except RuntimeError as exc:  # RemoteError too: one line
        _fail([str(exc)])
    _handed_over(local, answer["accepted"], wait, timeout)


def _pause_end(duration: str | None, until: str | None) -> float | None:
    """Epoch seconds from `--for 30m` or `--until 2026-12-02T20:00[+01:00]` (UTC without an offset)."""
    import re
    import time
    from datetime import UTC, datetime

    if duration is not None and until is not None:
        _fail(["give --for or --until, not both"])
    if duration is not None:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*", duration)
        if m is None or float(m.group(1)) <= 0:
            _fail([f"--for {duration!r}: a positive length such as 90s, 30m, 2h or 1d"])
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
        if seconds > 366 * 86400:
            _fail([f"--for {duration!r}: at most 366 days; leave it out to pause until `pgkeel resume`"])
        return time.time() + seconds
    if until is not None:
        try:
            when = datetime.fromisoformat(until)
        except ValueError:
            _fail([f"--until {until!r}: an ISO 8601 time such as 2026-12-02T20:00 (UTC) or 2026-12-02T21:00+01:00"])
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when.timestamp() <= time.time():
            _fail([f"--until {until!r} is in the past; nothing changed"])
        return when.timestamp()
    return None


@app.command()
def pause(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    duration: Annotated[
        str | None, typer.Option("--for", help="End the pause by itself after this long: 90s, 30m, 2h, 1d.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="End the pause at this time (ISO 8601; UTC).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Shown in status, e.g. a ticket number.")] = None,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Maintenance mode: no automatic failover until `resume` (or --for/--until); switchover still works.

    On other machines: through any member's API (--api or -f), with the API token (--token-file or --secrets)."""
    end = _pause_end(duration, until)
    remote = _remote(ctx)
    local: LocalCluster | RemoteCluster = remote if remote is not None else _local(directory)
    try:
        local.pause(end, reason)
    except RuntimeError as exc:
        _fail([str(exc)])
    console.print(
        "paused: no automatic failover " + (f"until {_when(end)}" if end is not None else "until `pgkeel resume`")
        + "; a dead primary is not replaced meanwhile (`pgkeel failover --force` still works)",
        highlight=False,
    )


@app.command()
def resume(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Leave maintenance mode: automatic failover again from the agents' next loop (remotely as `pause`)."""
    remote = _remote(ctx)
    local: LocalCluster | RemoteCluster = remote if remote is not None else _local(directory)
    try:
        was_paused = local.resume()
    except RuntimeError as exc:
        _fail([str(exc)])
    console.print("resumed: automatic failover is on" if was_paused else "not paused: nothing changed")


@app.command()
def history(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print the events as JSON (epoch times, LSNs as bytes).")]
    = False,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    secrets: SecretsDirOpt = None,
    store: StoreOpt = None,
    store_ca: StoreCaOpt = None,
    store_cert: StoreCertOpt = None,
    store_key: StoreKeyOpt = None,
    store_user: StoreUserOpt = None,
    store_password_file: StorePasswordOpt = None,
) -> None:
    """Every change of primary (failover, switchover, forced failover), oldest first, as the store keeps it.

    On other machines: --api (any member), --store (no agent needed) or -f FILE, as `pgkeel status`."""
    remote = _remote(ctx)
    if remote is not None:
        _print_history(_remote_call(remote.history), as_json)
        return
    local = _local(directory)
    try:
        events = local.history()
    except RuntimeError as exc:
        _fail([str(exc)])
    _print_history(events, as_json)


def _print_history(events: list[dict[str, Any]], as_json: bool) -> None:
    """The history table (or JSON), one row per change of primary; local and remote print the same."""
    from pgkeel.instance import format_lsn

    if as_json:
        print(json.dumps(events, indent=1))
        return
    if not events:
        console.print("no change of primary recorded yet (the bootstrap leader is the first primary)")
        return
    table = Table("time", "kind", "old primary", "new primary", "timeline", "fork LSN")
    for e in events:
        lsn = e.get("lsn")
        table.add_row(
            _when(e["time"]) if e.get("time") else "?",
            str(e.get("kind") or ""),
            str(e.get("previous") or ""),
            str(e.get("leader") or ""),
            str(e.get("timeline") or ""),
            format_lsn(lsn) if isinstance(lsn, int) else "",
        )
    console.print(table)


def _print_changes(plan: ApplyPlan) -> None:
    """The diff of rendered parameters: name, old → new, and whether a reload or a restart carries it."""
    table = Table("parameter", "old → new", "takes effect by")
    for c in plan.changes:
        table.add_row(c.name, f"{c.shown_old} → {c.shown_new}", c.change)
    if plan.hba_changed:
        table.add_row("pg_hba.conf", "changed", "reload")
    if table.rows:
        console.print(table)
    for name in plan.agent_fields:
        err.print(f"[yellow]note[/] the agents read {name} when they start: restart them for it (`down`, `up`)",
                  highlight=False)


def _rolling_restart(local: LocalCluster, only: str | None, pending_only: bool, timeout: float) -> None:
    from pgkeel.local.restart_order import OrderRefused
    from pgkeel.local.rolling import RestartFailed, RollingRestart

    with console.status("planning the restart…") as spinner:
        rolling = RollingRestart(local, say=console.print, progress=spinner.update, timeout=timeout)
        try:
            steps = rolling.plan(only, pending_only)
            if not steps:
                console.print("nothing to restart" + (" (no member has parameters pending)" if pending_only else ""))
                return
            for number, step in enumerate(steps, 1):
                console.print(f"  {number}. {step.kind} {step.member}: {step.why}", highlight=False)
            rolling.run(steps)
        except (OrderRefused, RestartFailed, RuntimeError) as exc:
            _fail(str(exc).splitlines())
    console.print(f"rolling restart done; leader: {local.status()['leader']}")


RestartTimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds each member has to come back.")]


@app.command("apply")
def apply_cmd(
    file: FileOpt,
    directory: DirOpt = DEFAULT_DIR,
    restart: Annotated[
        bool, typer.Option("--restart", help="Then restart, in rolling order, what is pending.")
    ] = False,
    yes: YesOpt = False,
    timeout: RestartTimeoutOpt = 120.0,
    purge: Annotated[bool, typer.Option(
        "--purge", help="Scaling down: delete the removed members' directories (default: kept in place).")] = False,
) -> None:
    """Apply another document to the running local cluster: show the parameter diff, write, reload every member.

    Another spec.instances scales the cluster (alone, without other changes): new members clone; removed
    ones leave cleanly (a leaving leader switches over first; their slots are dropped; data kept unless --purge)."""
    from pgkeel.local.apply import carry_out, plan_apply
    from pgkeel.pgconf import ConfigError

    _warn(_load_valid(file, installed=True))
    local = _local(directory)
    if not any(local.agent_pid(n) for n in local.cluster().member_names()):
        _fail([f"no member of {directory} is running: start it with `pgkeel up --dir {directory}` first"])
    try:
        plan = plan_apply(local, file)
    except (ValueError, ConfigError) as exc:
        _fail(str(exc).splitlines())
    if plan.scaling is not None:
        _scale(local, plan.document, plan.scaling, yes, timeout, purge)
        return
    _print_changes(plan)
    if plan.nothing:
        console.print("nothing to change: the cluster runs with these settings")
    else:
        restarts = len(plan.restarts)
        _confirm(f"Apply {file}: {len(plan.changes)} parameter(s), {restarts} of them need a restart"
                 + (", and pg_hba.conf" if plan.hba_changed else "") + "?", yes)
        with console.status("reloading…") as spinner:
            results = carry_out(local, plan, progress=spinner.update)
        for r in results:
            said = f"reloaded; in effect: {', '.join(r.applied) or 'no parameter'}" if r.reloaded else "not reloaded"
            parts = [said] + ([f"pending restart: {', '.join(r.pending)}"] if r.pending else [])
            console.print(f"{r.name}: {'; '.join(parts + r.problems)}", highlight=False)
        if any(r.problems and r.reloaded for r in results):
            _fail(["some members did not take the new values (above); see their postgres.log"])
    if restart:
        _rolling_restart(local, None, True, timeout)
    elif any(local_status.get("pending_restart") for local_status in _member_statuses(local)):
        console.print("restart-only parameters are pending: [cyan]pgkeel restart --pending[/] applies them")


def _scale(local: LocalCluster, document: Path, scaling: Scaling, yes: bool, timeout: float, purge: bool) -> None:
    from pgkeel.local import scaling as scale
    from pgkeel.local.cluster import AgentExited

    change = (f"add {', '.join(scaling.added)}" if scaling.added else f"remove {', '.join(scaling.removed)}")
    console.print(f"spec.instances: {len(scaling.before)} → {len(scaling.after)}: {change}; synchronous set "
                  f"ANY {scaling.k_before} → ANY {scaling.k_after}", highlight=False)
    gone = " (their directories deleted: --purge)" if purge else " (their data kept in place)"
    _confirm(f"Scale {document.name} to {len(scaling.after)} members" + (gone if scaling.removed else "") + "?", yes)
    try:
        with console.status("scaling…") as spinner:
            done = scale.carry_out(local, document, scaling, spinner.update, timeout=max(timeout, 180.0),
                                   purge=purge)
    except (RuntimeError, TimeoutError, AgentExited) as exc:
        _fail(str(exc).splitlines())
    said = f"scaled to {len(scaling.after)} members in {done.seconds:.1f} s"
    if done.switched_over:
        said += f"; the leader handed over to {done.switched_over} first"
    if done.kept:
        said += f"; removed members' data kept at {', '.join(done.kept)}"
    if done.purged:
        said += f"; deleted: {', '.join(done.purged)}"
    console.print(said, highlight=False, soft_wrap=True)
    _print_status(local.status())


def _member_statuses(local: LocalCluster) -> list[dict[str, Any]]:
    return [s for s in (local.fetch(n) for n in local.cluster().member_names()) if s is not None]


@app.command("restart")
def restart_cmd(
    member: Annotated[str | None, typer.Argument(help="Restart only this member (the primary: by a switchover).")]
    = None,
    directory: DirOpt = DEFAULT_DIR,
    pending: Annotated[bool, typer.Option("--pending", help="Only members with parameters pending a restart.")]
    = False,
    yes: YesOpt = False,
    timeout: RestartTimeoutOpt = 120.0,
) -> None:
    """Rolling restart: replicas one at a time, then a switchover, then the old primary (one write outage)."""
    local = _local(directory)
    _confirm(f"Restart {member or ('members with pending parameters' if pending else 'every member')} "
             "(writes pause once, for a switchover)?", yes)
    _rolling_restart(local, member, pending, timeout)


MemberArg = Annotated[str, typer.Argument(help="The member (a name of `pgkeel status`).")]


@app.command()
def reinit(
    ctx: typer.Context,
    member: MemberArg,
    directory: DirOpt = DEFAULT_DIR,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until it streams again from a fresh clone.")]
    = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait with --wait.")] = 600.0,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Re-clone a replica from the primary (pg_basebackup); its old data directory is kept aside, never deleted.

    Refused (exit 1, nothing changed) for the leader, an unknown member, a cluster without a running leader,
    or a member that keeps an aside copy already (one at most: `pgkeel status --json`, /status `asides`).
    On other machines: through that member's API (--api or -f), with the API token."""
    import time

    from pgkeel.remote.progress import wait_reinit

    remote = _remote(ctx)
    local = _local(directory) if remote is None else None
    target: LocalCluster | RemoteCluster = remote if remote is not None else _local(directory)
    if local is not None:
        try:
            local.check_member(member)
        except ValueError as exc:
            _fail([str(exc)])

    def fetch() -> dict[str, Any] | None:
        return local.fetch(member) if local is not None else remote.member_status(member) if remote else None

    before = fetch()
    if before is not None and before.get("is_leader"):
        _fail([f"{member} is the leader: its data is the cluster's; switch over first, then reinit it as a replica"])
    leader = (before or {}).get("leader")
    _confirm(f"Re-clone {member} from the primary {leader or '?'}? Its data directory is kept aside (not deleted).",
             yes)
    try:
        accepted = target.request_reinit(member)
    except RuntimeError as exc:  # RemoteError too: one line
        _fail([str(exc)])
    if not wait:
        console.print(f"requested: {member} re-clones from {leader or 'the leader'}; its old data is kept aside "
                      f"(`pgkeel status --json` lists it; --wait waits)", highlight=False)
        return
    started = time.monotonic()
    try:
        with console.status(f"re-cloning {member}…"):
            snap = wait_reinit(fetch, float(accepted["requested_at"]), (before or {}).get("alarm"), timeout)
    except (RuntimeError, TimeoutError) as exc:
        _fail([f"{member}: {exc}"])
    took = time.monotonic() - started
    aside = max(snap.get("asides") or [], key=lambda a: float(a.get("created") or 0))
    console.print(f"{member} streams again from a fresh clone of {snap.get('leader')} in {took:.1f} s; old data "
                  f"kept at {aside['path']} ({int(aside['bytes']) / 2**20:.1f} MiB)", highlight=False, soft_wrap=True)


@app.command()
def logs(
    member: MemberArg,
    directory: DirOpt = DEFAULT_DIR,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="How many lines from the end.")] = 40,
    postgres: Annotated[bool, typer.Option("--postgres", help="Only postgres' log (postgres.log).")] = False,
    agent: Annotated[bool, typer.Option("--agent", help="Only the agent's log (agent.log).")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep printing new lines until Ctrl-C.")] = False,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
) -> None:
    """The end of a local member's agent log and postgres log (both by default), optionally followed.

    A member on another machine writes its logs there: read them on that machine (journalctl -u pgkeel-CLUSTER,
    and postgres.log in the member's directory); the API serves no logs."""
    from pgkeel.local.log_files import follow_files

    if file is not None or api:
        _fail([f"logs of {member} are read on its own machine: `journalctl -u pgkeel-<cluster>` there (the agent) "
               "and postgres.log in its member directory; the member API serves no logs"])
    if postgres and agent:
        _fail(["give --postgres or --agent (or neither, for both)"])
    local = _local(directory)
    try:
        local.check_member(member)
    except ValueError as exc:
        _fail([str(exc)])
    node = local.layout.node(member)
    chosen = [("agent", node / "agent.log")] if agent else [("postgres", node / "postgres.log")] if postgres else [
        ("agent", node / "agent.log"), ("postgres", node / "postgres.log")]
    for label, _path in chosen:
        text = local.log_tail(member, lines) if label == "agent" else local.postgres_log_tail(member, lines)
        if len(chosen) > 1:
            console.print(f"[bold]==> {member} {label} log <==[/]", highlight=False)
        sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))
    sys.stdout.flush()
    if follow:
        try:
            for label, line in follow_files(dict(chosen)):
                sys.stdout.write(f"{label}: {line}" if len(chosen) > 1 else line)
                sys.stdout.flush()
        except KeyboardInterrupt:
            return


@app.command()
def psql(
    name: Annotated[str | None, typer.Argument(help="Member to connect to (default: the primary).")] = None,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments for psql, after `--`: -- -c 'select 1'.")] = None,
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Open psql on the primary (or on a named member): pgkeel psql [NAME] [-- PSQL-ARGS…]."""
    local = _local(directory)
    extra = list(args or [])
    if name is not None and name.startswith("-"):  # `pgkeel psql -- -c …`: no member named (names never start so)
        extra.insert(0, name)
        name = None
    try:
        argv = local.psql_argv(name, extra)
    except ValueError as exc:
        _fail([str(exc)])
    os.execv(argv[0], argv)


@app.command()
def down(
    directory: DirOpt = DEFAULT_DIR,
    purge: Annotated[bool, typer.Option(help="Also delete all data (asks first).")] = False,
    yes: YesOpt = False,
) -> None:
    """Stop every process of the local cluster (by PID); data is kept unless --purge.

    Idempotent, like stopping a service: a directory without a cluster (never made, or purged
    already) is said in one line and exits 0, so a cleanup script can run it twice."""
    from pgkeel.local import LocalCluster

    if not LocalCluster(directory).exists():
        console.print(f"no local cluster in {directory}: nothing to stop", highlight=False, soft_wrap=True)
        return
    local = _local(directory)
    if purge:
        _confirm(
            f"Delete cluster {local.cluster().name!r} in {local.layout.root}: every data directory, "
            "the secrets and any aside copies?",
            yes,
        )
    stopped = local.down(purge=purge)
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


# --- several machines: one member per machine, etcd as the store (pgkeel.node) -------------------------
node_app = typer.Typer(no_args_is_help=True, help="Run one member of a cluster on this machine.")
app.add_typer(node_app, name="node")
secrets_app = typer.Typer(no_args_is_help=True, help="Create the cluster's CA, passwords and per-member bundles.")
app.add_typer(secrets_app, name="secrets")
MemberOpt = Annotated[str, typer.Option("--member", help="This machine's member: a name in spec.members.")]
NodeDirOpt = Annotated[Path | None, typer.Option("--dir", help="Member state; default /var/lib/pgkeel/CLUSTER.")]
BundleOpt = Annotated[
    Path | None, typer.Option("--secrets", help="This member's bundle (DIR/MEMBER of `secrets init`); "
                              "default /etc/pgkeel/CLUSTER.")
]


def _member_of(cluster: PostgresCluster, member: str) -> None:
    if member not in cluster.member_names():
        _fail([f"--member {member}: not in spec.members of {cluster.name} ({', '.join(cluster.member_names())}); "
               "use one of those names"])


@node_app.command("run")
def node_run(file: FileOpt, member: MemberOpt, directory: NodeDirOpt = None, secrets: BundleOpt = None) -> None:
    """Run this machine's member in the foreground: everything derived from the document and the bundle."""
    from pgkeel.node.bundle import Bundle
    from pgkeel.node.config import NodePaths, default_bundle_dir, node_config
    from pgkeel.node.run import run_node

    cluster = _load_valid(file)
    _member_of(cluster, member)
    paths = NodePaths.default(cluster.name, directory)
    bundle = Bundle(secrets or default_bundle_dir(cluster.name), member)
    try:
        config = node_config(cluster, member, paths, bundle)
        code = run_node(cluster, config, paths)
    except (ValueError, OSError) as exc:  # NodeError, BundleError, a file the user must fix
        _fail([str(exc)], f"cannot run member {member}")
    sys.exit(code)


@render_app.command("systemd")
def render_systemd_cmd(
    file: FileOpt, member: MemberOpt, directory: NodeDirOpt = None, secrets: BundleOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout.")] = None,
) -> None:
    """A systemd unit running `pgkeel node run` for MEMBER as the postgres user, restarted on failure."""
    from pgkeel.node.config import NodePaths
    from pgkeel.node.systemd import systemd_unit

    cluster = _load_valid(file)
    _member_of(cluster, member)
    program = str(Path(sys.argv[0]).resolve()) if Path(sys.argv[0]).name == "pgkeel" else "/usr/bin/pgkeel"
    unit = systemd_unit(cluster, member, file.resolve(), NodePaths.default(cluster.name, directory), secrets,
                        program)
    _write_or_print(unit, output)


@secrets_app.command("init")
def secrets_init(
    file: FileOpt,
    out: Annotated[Path, typer.Option("--out", help="New directory: ca/ (stays here) and one bundle per member.")],
) -> None:
    """Create the cluster CA, passwords and API token once, and DIR/MEMBER/ to copy to each machine."""
    from pgkeel.node.bundle import init_secrets

    cluster = _load_valid(file)
    try:
        bundles = init_secrets(cluster, out)
    except (ValueError, OSError) as exc:
        _fail([str(exc)])
    console.print(f"CA (keep it here, off the machines): {out / 'ca'}", highlight=False)
    for bundle in bundles:
        host = cluster.member_spec(bundle.member).host or "its machine"
        console.print(f"{bundle.member}: copy {bundle.directory}/ to {host}:/etc/pgkeel/{cluster.name}/ "
                      "(owner postgres, mode 0700)", highlight=False)


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


backup_app = typer.Typer(no_args_is_help=True, help="Backups of the local cluster with pgBackRest (spec.backup).")
app.add_typer(backup_app, name="backup")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@backup_app.command("now")
def backup_now_cmd(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    kind: Annotated[str, typer.Option("--type", help="full | diff | incr.")] = "full",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result (the backup goes on after).")]
    = 6 * 3600.0,
    as_json: JsonOpt = False,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Take a backup now: queued in the store, run by the leader's agent (creating the stanza if needed), from a
    streaming replica when spec.backup.fromStandby, then expire what the retention no longer keeps.

    On other machines: through any member's API (--api or -f), with the API token (--token-file or --secrets)."""
    if kind not in ("full", "diff", "incr"):
        _fail([f"--type: {kind!r} is not one of full, diff, incr"])
    remote = _remote(ctx)
    target: LocalCluster | RemoteCluster = remote if remote is not None else _local(directory)
    with console.status(f"{kind} backup: queued…") as spinner:
        try:
            result = target.backup_now(kind, timeout, lambda text: spinner.update(f"{kind} backup: {text}"))
        except (RuntimeError, TimeoutError) as exc:
            _fail(str(exc).splitlines())
    if not result.ok:
        _fail([f"{kind} backup failed on {result.member}: {result.error}"])
    backup = result.detail.get("backup")
    if as_json:
        print(json.dumps({"backup": backup, "label": result.label, "source": result.source, "primary": result.primary,
                          "stanza_created": bool(result.detail.get("stanza_created")),
                          "already_made": bool(result.detail.get("already_made"))}, indent=1))
        return
    if backup is None:
        console.print(f"backup [bold]{result.label}[/] started after this request already: not taking another",
                      highlight=False)
        return
    seconds = result.finished - result.started
    console.print(f"{backup['type']} backup [bold]{result.label}[/] from {result.source} (primary {result.primary}): "
                  f"{backup['size'] / 2**20:.1f} MiB, {seconds:.0f} s, WAL {backup['wal_start']}…{backup['wal_stop']}",
                  highlight=False)


def _backup_table(state: Any) -> None:
    table = Table("label", "type", "started", "stopped", "size MiB", "stored MiB", "WAL start", "WAL stop", "LSN stop")
    for b in state.backups:
        table.add_row(b.label, b.type, b.started.strftime("%Y-%m-%d %H:%M:%S"), b.stopped.strftime("%H:%M:%S"),
                      f"{b.size / 2**20:.1f}", f"{b.repo_size / 2**20:.1f}", b.wal_start, b.wal_stop, b.lsn_stop)
    console.print(table)
    console.print(f"stanza {state.stanza}: {state.status}; archived WAL {state.wal_min or '-'} … "
                  f"{state.wal_max or '-'}", highlight=False)


def _repository_state(ctx: typer.Context, directory: Path) -> Any:
    """The backups in the cluster's repository: `pgbackrest info` here, or a member's GET /backups/repository
    with --api / -f; exits with the reason when it cannot be read."""
    from pgkeel.backup import BackupError, RepositoryState
    from pgkeel.local import backups

    remote = _remote(ctx)
    if remote is not None:
        return RepositoryState.from_dict(_remote_call(remote.repository))
    local = _local(directory)
    try:
        return backups.engine(local.layout, local.cluster()).info()
    except (ValueError, BackupError) as exc:
        _fail(str(exc).splitlines())


@backup_app.command("list")
def backup_list_cmd(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    as_json: JsonOpt = False,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """The backups in the cluster's first repository: label, type, start/stop time, size, WAL range.

    On other machines: through any member's API (--api or -f; --ca or --secrets for its certificate)."""
    state = _repository_state(ctx, directory)
    if as_json:
        print(json.dumps(state.as_dict(), indent=1))
    else:
        _backup_table(state)


@backup_app.command("info")
def backup_info_cmd(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    as_json: JsonOpt = False,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Like list, plus the stanza's system identifier and how the cluster was bootstrapped (bootstrap.json).

    On other machines: through any member's API, as `list` (the bootstrap record is local only)."""
    from pgkeel.local import restore

    state = _repository_state(ctx, directory)
    record = None
    if _remote(ctx) is None:
        record_file = restore.record_file(_local(directory).layout)
        record = json.loads(record_file.read_text()) if record_file.exists() else None
    if as_json:
        print(json.dumps({**state.as_dict(), "bootstrap": record}, indent=1))
        return
    _backup_table(state)
    console.print(f"system identifier {state.system_identifier or '-'}", highlight=False)
    if record:
        console.print(f"bootstrapped from {record['from_backup']}: recovered to {record['recovered_lsn']} "
                      f"(timeline {record['timeline']}) at {record['restored_at']}", highlight=False)


@backup_app.command("verify")
def backup_verify_cmd(
    ctx: typer.Context,
    directory: DirOpt = DEFAULT_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result (the drill goes on after).")]
    = 6 * 3600.0,
    as_json: JsonOpt = False,
    file: RemoteFileOpt = None,
    api: ApiOpt = None,
    ca: CaOpt = None,
    token_file: TokenFileOpt = None,
    secrets: SecretsDirOpt = None,
) -> None:
    """Restore drill, run by the leader's agent: restore the newest backup into a scratch copy, replay the whole
    archive, check it (pg_amcheck, canary, recovered point = archive end), delete it; exit 1 when red.

    On other machines: through any member's API (--api or -f), with the API token (--token-file or --secrets)."""
    remote = _remote(ctx)
    target: LocalCluster | RemoteCluster
    if remote is not None:
        target = remote
    else:
        target = _local(directory)
        if target.cluster().spec.backup is None:
            _fail([f"spec.backup is not set: add spec.backup.repositories (e.g. [{{volume: {{path: "
                   f"/var/lib/pgbackrest}}}}]) to {target.layout.document} and run `pgkeel up` to apply it"])
    with console.status("restore drill: queued…") as spinner:
        try:
            result = target.backup_now("drill", timeout, lambda text: spinner.update(f"restore drill: {text}"))
        except (RuntimeError, TimeoutError) as exc:
            _fail(str(exc).splitlines())
    drill = result.detail.get("drill")
    if drill is None:
        _fail([f"restore drill could not run on {result.member}: {result.error}"])
    if as_json:
        print(json.dumps(drill, indent=1))
    else:
        colour, word = ("green", "GREEN") if drill["ok"] else ("red", "RED")
        console.print(f"restore drill [bold {colour}]{word}[/] on {result.member}: backup {drill['backup'] or '-'}, "
                      f"{drill['duration_s']:.1f} s, recovered to {drill['recovered_lsn'] or '-'} "
                      f"(timeline {drill['recovered_timeline'] or '-'}, {drill['recovered_time'] or '-'}); "
                      f"archive ends at {drill['archive_end'] or '-'}", highlight=False)
        for check in drill["checks"]:
            mark = "[green]ok[/]  " if check["ok"] else "[red]FAIL[/]"
            console.print(f"  {mark} {check['name']}: {escape(check['detail'])}", highlight=False)
        if drill["error"]:
            console.print(f"  [red]error[/] {escape(drill['error'])}", highlight=False)
    if not drill["ok"]:
        raise typer.Exit(1)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("pgkeel")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown (not installed)"
        console.print(f"pgkeel {number}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Highly available PostgreSQL, anywhere."""


def main() -> None:
    app()
