"""Everything one agent needs to run one node, as one JSON-serialisable document.

`pgkeel up` writes one per node; in a pod the same model is filled from the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from pgkeel.document import PostgresCluster
from pgkeel.ha.model import HASettings
from pgkeel.instance import InstanceConfig


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    scope: str = Field(description="Cluster name: namespaces the keys in the coordination store.")
    members: list[str]
    dcs_url: str
    api_host: str = "127.0.0.1"
    api_port: int = 8008
    api_token_file: Path | None = None
    advertise_host: str = Field(description="Address peers and clients use to reach this node's postgres.")
    bindir: Path
    datadir: Path
    config_file: Path
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    socket_dir: Path
    log_file: Path
    superuser: str = "postgres"
    replication_user: str = "replicator"
    passfile: Path
    superuser_password_file: Path
    replication_password_file: Path
    tls_enabled: bool = False
    tls_dir: Path | None = Field(default=None, description="Where this node's server.crt/server.key live.")
    ca_file: Path | None = None
    ca_key_file: Path | None = Field(default=None, description="Lets the agent issue and renew its own certificate.")
    tls_names: list[str] = Field(default_factory=list, description="DNS names and IPs the certificate must carry.")
    certificate_days: int = 365
    renew_before_days: int = 30
    ttl: float = 3.0
    loop_wait: float = 0.5
    dcs_timeout: float = 0.5
    fence_deadline: float = 1.5
    mode: str = "quorum"
    sync_standbys: int = 1
    max_lag_bytes: int = 1 << 20
    restart_timeout: float = 10.0

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def member_ttl(self) -> float:
        """Member records outlive the lease so an election still sees the last leader's position."""
        return max(10.0, 3 * self.ttl)

    def settings(self) -> HASettings:
        return HASettings(
            ttl=self.ttl,
            loop_wait=self.loop_wait,
            dcs_timeout=self.dcs_timeout,
            fence_deadline=self.fence_deadline,
            mode="quorum" if self.mode == "quorum" else "async",
            sync_standbys=self.sync_standbys,
            max_lag_bytes=self.max_lag_bytes,
            restart_timeout=self.restart_timeout,
        )

    def instance_config(self) -> InstanceConfig:
        return InstanceConfig(
            name=self.name,
            bindir=self.bindir,
            datadir=self.datadir,
            config_file=self.config_file,
            host=self.pg_host,
            port=self.pg_port,
            socket_dir=self.socket_dir,
            log_file=self.log_file,
            superuser=self.superuser,
            replication_user=self.replication_user,
            passfile=self.passfile,
            superuser_password_file=self.superuser_password_file,
            replication_password_file=self.replication_password_file,
            ssl_root_cert=self.ca_file if self.tls_enabled else None,
        )

    @classmethod
    def timings_from(cls, cluster: PostgresCluster) -> dict[str, object]:
        """The HA fields that come straight from the cluster document."""
        spec = cluster.spec
        return {
            "scope": cluster.name,
            "members": cluster.member_names(),
            "superuser": spec.users.superuser,
            "replication_user": spec.users.replication,
            "ttl": spec.failover.ttl_seconds,
            "loop_wait": spec.failover.loop_wait_seconds,
            "dcs_timeout": spec.failover.dcs_timeout_seconds,
            "fence_deadline": spec.failover.fence_deadline_seconds,
            "mode": spec.replication.mode,
            "sync_standbys": spec.replication.sync_standbys,
            "max_lag_bytes": spec.replication.max_lag_bytes,
            "restart_timeout": spec.failover.postgres_restart_timeout_seconds,
            "tls_enabled": spec.tls.enabled,
            "certificate_days": spec.tls.certificate_days,
            "renew_before_days": spec.tls.renew_before_days,
        }
