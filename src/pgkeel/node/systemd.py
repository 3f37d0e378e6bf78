"""`pgkeel render systemd`: the unit that runs one member with `pgkeel node run`.

Choices, each for a reason:
- User=postgres from the start (not root with the agent's own drop): nothing the agent does needs
  root once its directory exists, and StateDirectory= makes /var/lib/pgkeel/<cluster> for it.
- KillMode=mixed: on stop systemd sends SIGTERM to the agent alone, which stops postgres itself
  (fast shutdown, so a replica can take over with everything acknowledged) and gives the lease
  back; only what is left after TimeoutStopSec gets SIGKILL. The default (control-group) would
  signal postgres at the same moment, a smart shutdown racing the agent's own.
- Restart=on-failure with RestartSec: a crashed agent, or a store not up yet at boot, is retried;
  a clean stop stays stopped. After/Wants=network-online.target: the member's address must exist
  before postgres and the API bind to it.
- LimitNOFILE: postgres keeps up to max_files_per_process (1000) open per backend.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pgkeel.document import PostgresCluster
from pgkeel.node.config import DEFAULT_BASE, NodePaths, default_bundle_dir

STOP_TIMEOUT_SECONDS = 120  # as the pods' termination grace: a fast shutdown checkpoint and a handover


def systemd_unit(
    cluster: PostgresCluster,
    member: str,
    document: Path,
    paths: NodePaths | None = None,
    secrets: Path | None = None,
    program: str = "/usr/bin/pgkeel",
) -> str:
    """The unit file text; `member` must be in the document (KeyError otherwise)."""
    spec = cluster.member_spec(member)
    paths = paths or NodePaths.default(cluster.name)
    argv = [program, "node", "run", "-f", str(document), "--member", member, "--dir", str(paths.base),
            "--secrets", str(secrets or default_bundle_dir(cluster.name))]
    state = ""
    if paths.base.parent == DEFAULT_BASE:
        state = f"StateDirectory=pgkeel/{paths.base.name}\nStateDirectoryMode=0700\n"
    return f"""# pgkeel member {member} of cluster {cluster.name} ({spec.host}:{spec.pg_port}, API {spec.api_port})
# Install: /etc/systemd/system/pgkeel-{cluster.name}.service; systemctl enable --now pgkeel-{cluster.name}
[Unit]
Description=pgkeel PostgreSQL member {member} of {cluster.name}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=postgres
Group=postgres
{state}ExecStart={shlex.join(argv)}
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={STOP_TIMEOUT_SECONDS}
Restart=on-failure
RestartSec=5
LimitNOFILE=65536
NoNewPrivileges=true
PrivateTmp=true

[Install]
WantedBy=multi-user.target
"""
