"""Everything one agent needs to run one node, as one JSON-serialisable document.

`pgkeel up` writes one per node; in a pod the same model is filled from the environment.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path
from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

from pgkeel.backup.job import BackupJob
from pgkeel.dcs import EtcdAccess
from pgkeel.document import PostgresCluster
from pgkeel.ha.records import url_host
from pgkeel.ha.settings import HASettings
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
    ha: HASettings = Field(default_factory=HASettings, description="Timings and replication rules (one source).")
    fence_file: Path | None = Field(
        default=None,
        description="The lease deadline file pgkeel_fence (or the watchdog) reads; outside the data directory.",
    )
    etcd: EtcdAccess | None = Field(default=None, description="TLS files and credentials for an etcd store.")
    api_cert_file: Path | None = Field(
        default=None, description="The API serves HTTPS with this certificate (and api_key_file) beyond loopback."
    )
    api_key_file: Path | None = None
    archive_max_backlog: int | None = Field(
        default=None, description="spec.backup.archive: bytes of WAL that may wait for the archive; null: no archive."
    )
    archive_on_backlog_full: Literal["stopArchiving", "stopWrites"] = "stopArchiving"
    backup: BackupJob | None = Field(
        default=None, description="spec.backup's schedules: the leader's agent runs them (pgkeel.agent.backups)."
    )

    @property
    def api_url(self) -> str:
        scheme = "https" if self.api_cert_file is not None else "http"
        return f"{scheme}://{url_host(self.api_host)}:{self.api_port}"

    @property
    def api_verify(self) -> ssl.SSLContext | bool:
        """How this node checks its peers' HTTPS APIs: against the cluster CA when it has one."""
        return _ca_context(str(self.ca_file)) if self.ca_file is not None else True

    def instance_config(self, extra_options: dict[str, str] | None = None) -> InstanceConfig:
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
            extra_options=dict(extra_options or {}),
        )

    @classmethod
    def document_fields(cls, cluster: PostgresCluster, dcs_url: str = "") -> DocumentFields:
        """The fields every node takes from the cluster document (node identity comes separately);
        dcs_url: the node's store, whose default timings apply where the document sets none."""
        spec = cluster.spec
        return DocumentFields(
            scope=cluster.name,
            members=cluster.member_names(),
            superuser=spec.users.superuser,
            replication_user=spec.users.replication,
            ha=HASettings.from_document(cluster, dcs_url),
            tls_enabled=spec.tls.enabled,
            certificate_days=spec.tls.certificate_days,
            renew_before_days=spec.tls.renew_before_days,
            archive_max_backlog=spec.archive_backlog_bytes if spec.backup else None,
            archive_on_backlog_full=spec.backup.archive.on_backlog_full if spec.backup else "stopArchiving",
        )


@functools.lru_cache(maxsize=4)
def _ca_context(ca_file: str) -> ssl.SSLContext:
    # one context per CA file for the process: peers are probed every loop
    return ssl.create_default_context(cafile=ca_file)


class DocumentFields(TypedDict):
    scope: str
    members: list[str]
    superuser: str
    replication_user: str
    ha: HASettings
    tls_enabled: bool
    certificate_days: int
    renew_before_days: int
    archive_max_backlog: int | None
    archive_on_backlog_full: Literal["stopArchiving", "stopWrites"]
