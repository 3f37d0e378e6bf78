"""The `PostgresCluster` document: pydantic models with defaults an operator would expect.

Field names are camelCase on the wire (Kubernetes style) and snake_case in Python.
Every rule that can be checked without knowing PostgreSQL's parameter catalogue lives here;
parameter and hba validation belong to `pgkeel.pgconf`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from pgkeel.document.backup import HELD_WAL_DIVISOR, WAL_SEGMENT, BackupSpec, Bootstrap
from pgkeel.document.base import Model as _Model
from pgkeel.document.quantity import QuantityError, parse_bytes, parse_cpu_millis

API_VERSION = "pgkeel.dev/v1alpha1"
KIND = "PostgresCluster"
SUPPORTED_MAJORS = (13, 14, 15, 16, 17)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _memory(value: str) -> str:
    try:
        n = parse_bytes(value)
    except QuantityError as exc:
        raise ValueError(str(exc)) from None
    if n <= 0:
        raise ValueError(f"must be greater than zero; got {value!r}")
    return value


def _cpu(value: str) -> str:
    try:
        n = parse_cpu_millis(value)
    except QuantityError as exc:
        raise ValueError(f"{exc} (CPU: `2` cores or `500m` millicores)") from None
    if n <= 0:
        raise ValueError(f"must be greater than zero; got {value!r}")
    return value


MemoryQuantity = Annotated[str, AfterValidator(_memory)]
CpuQuantity = Annotated[str, AfterValidator(_cpu)]


class Metadata(_Model):
    """Name and place of the cluster."""

    name: str = Field(description="Cluster name: a DNS-1123 label, used for every object name.")
    namespace: str = Field(default="default", description="Kubernetes namespace of every object.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels added to every Kubernetes object.")

    @field_validator("name", "namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 50 or not _DNS_LABEL.fullmatch(value):
            raise ValueError(
                "must be a DNS-1123 label of at most 50 characters: lower-case letters, digits "
                f"and '-', starting and ending with a letter or digit; got {value!r}"
            )
        return value


ParameterValue = str | int | float | bool


class PostgresSettings(_Model):
    """The PostgreSQL server: major version, parameter overrides, extra hba rules."""

    version: int = Field(
        default=15,
        description="PostgreSQL major version (13–17). Fixed for the life of a cluster: major upgrades are not "
        "supported yet.",
    )
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict, description="postgresql.conf overrides; validated against the catalogue."
    )
    hba: list[str] = Field(
        default_factory=list,
        description="Extra pg_hba.conf rules, one line each, placed before pgkeel's final reject.",
    )
    bindir: str | None = Field(
        default=None, description="Directory of the server binaries; default /usr/lib/postgresql/<version>/bin."
    )

    @field_validator("version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value < 13:
            raise ValueError(
                f"PostgreSQL {value} is not supported: pgkeel needs 13 or newer "
                "(wal_keep_size appeared in 13); set spec.postgres.version to 15"
            )
        if value not in SUPPORTED_MAJORS:
            raise ValueError(f"must be one of {', '.join(map(str, SUPPORTED_MAJORS))}; got {value}")
        return value

    @property
    def binaries(self) -> str:
        """Where the server binaries of this major are: `bindir`, or Debian's /usr/lib/postgresql/<version>/bin."""
        return self.bindir or f"/usr/lib/postgresql/{self.version}/bin"


class Resources(_Model):
    """The container's limits per node; memory and CPU settings are tuned from them, not from the host."""

    cpu: CpuQuantity = Field(default="1", description="CPU limit, e.g. `2` or `500m`.")
    memory: MemoryQuantity = Field(default="1Gi", description="Memory limit, e.g. `4Gi`.")

    @property
    def cpu_millis(self) -> int:
        return parse_cpu_millis(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return parse_bytes(self.memory)

    @model_validator(mode="after")
    def _enough_memory(self) -> Resources:
        if self.memory_bytes < 256 * 2**20:
            raise ValueError(f"memory: at least 256Mi is needed to run PostgreSQL and the agent; got {self.memory}")
        return self


class Storage(_Model):
    """The data volume per node; the WAL budget is sized so WAL can never fill it."""

    size: MemoryQuantity = Field(default="10Gi", description="Volume size, e.g. `20Gi`.")
    kind: Literal["ssd", "hdd"] = Field(default="ssd", description="Drives random_page_cost and io concurrency.")
    storage_class: str | None = Field(default=None, description="Kubernetes StorageClass of the volume.")

    @property
    def size_bytes(self) -> int:
        return parse_bytes(self.size)

    @model_validator(mode="after")
    def _big_enough(self) -> Storage:
        if self.size_bytes < 1 * 2**30:
            raise ValueError(f"size: at least 1Gi is needed for data and WAL; got {self.size}")
        return self


MAX_INSTANCES = 9


def instances_problem(value: int) -> str | None:
    """Why `value` members cannot be a cluster (None: it can); also what a scaled StatefulSet is checked against."""
    if value < 1 or value > MAX_INSTANCES:
        return f"must be between 1 and {MAX_INSTANCES} (1, 3, 5, 7, 9); got {value}"
    if value % 2 == 0:
        return f"must be odd (1, 3, 5, …) so that a majority survives the loss of n nodes; got {value}"
    return None


def sync_standbys_for(mode: str, instances: int, eligible: int, explicit: int | None) -> int:
    """k of `ANY k (…)` for `instances` members of which `eligible` standbys may be synchronous: the explicit
    syncStandbys, else n = (instances - 1) / 2 so any n failures stay survivable. One rule for the document and
    for a membership recorded by a scaling (pgkeel.ha.k8s_scaling)."""
    if mode != "quorum" or instances == 1:
        return 0
    # n, but leaving one standby of slack where tags shrink the set (k of k: any one down would stop writes)
    return explicit or max(1, min((instances - 1) // 2, eligible - 1))


class Replication(_Model):
    """How commits wait for replicas, and which replica may be promoted."""

    mode: Literal["async", "quorum"] = Field(
        default="quorum",
        description="quorum: commits wait for syncStandbys replicas (no acknowledged write is lost); "
        "async: commits never wait, failover may lose up to maxLagOnFailover.",
    )
    sync_standbys: int | None = Field(
        default=None,
        ge=1,
        description="k in synchronous_standby_names = 'ANY k (…)'. Default n = (instances - 1) / 2, so any n "
        "failures leave a replica that provably holds every acknowledged commit.",
    )
    max_lag_on_failover: MemoryQuantity = Field(
        default="1Mi", description="async mode: a replica lagging more than this is never promoted."
    )

    @property
    def max_lag_bytes(self) -> int:
        return parse_bytes(self.max_lag_on_failover)


# The timings on the Kubernetes store when the document sets none of them (docs/kubernetes.md): the API's
# SLO allows single-object writes a p99 of 1 s, and etcd elections stall it for seconds. dcsTimeout 1.5 s
# fits a call at that p99; the fence deadline 9 − 1 − 2 × 1.5 = 5 s is over 3 × p99 and over loop + 2 ×
# timeout (4 s), so the failsafe round runs before the fence whatever the phase of a stall; a 3 s stall
# leaves renewals ≤ loop + stall + timeout = 5.5 s apart, inside the 9 s ttl; a crashed primary is replaced
# in ≈ ttl + 2 loops + promotion ≈ 11.5 s. (8/1/2 lapsed the fence at 7 of 20 stalls; 10/1/2 took 12.7 s.)
KUBERNETES_TIMINGS = {"ttl_seconds": 9.0, "loop_wait_seconds": 1.0, "dcs_timeout_seconds": 1.5}
TIMING_FIELDS = frozenset(KUBERNETES_TIMINGS)


class Failover(_Model):
    """Timings of the leader lease; ttlSeconds must exceed 2 × loopWaitSeconds + 2 × dcsTimeoutSeconds."""

    ttl_seconds: float = Field(
        default=3.0, ge=1.0, le=300.0, description="Leader lease duration. On the Kubernetes store: 9."
    )
    loop_wait_seconds: float = Field(
        default=0.5, gt=0.0, le=60.0, description="Agent loop period. On the Kubernetes store: 1."
    )
    dcs_timeout_seconds: float = Field(
        default=0.5,
        gt=0.0,
        le=30.0,
        description="Bound on one call to the coordination store. On the Kubernetes store: 1.5. The Kubernetes "
        "defaults apply when the document sets none of the three timings (docs/kubernetes.md).",
    )
    postgres_restart_timeout_seconds: float = Field(
        default=10.0,
        ge=1.0,
        le=600.0,
        description="A crashed primary restarts in place; past this bound it hands over leadership.",
    )
    failsafe: bool = Field(
        default=True,
        description="While the coordination store is unreachable, the primary keeps accepting writes as long as "
        "every other member promises (through its API, every loop) not to take over; false: it stops writes "
        "one fence deadline after its last renewal, as without failsafe.",
    )

    @property
    def fence_deadline_seconds(self) -> float:
        """How long after the last successful renewal a leader may still accept writes.

        Invariant (checked below): a leader that fails to renew stops writes before its lease
        can expire anywhere. The renewal it last won started at t0 (monotonic, before the
        request left), so the lease lives at least until t0 + ttl everywhere. The agent checks
        the deadline once per loop and each loop may block on the store for dcs_timeout, so it
        notices at most loop_wait + dcs_timeout late; demoting (stop, fast) is bounded by one
        more dcs_timeout of margin.
        """
        return self.ttl_seconds - self.loop_wait_seconds - 2 * self.dcs_timeout_seconds

    def for_store(self, dcs_url: str) -> Failover:
        """These timings as the agent on the store `dcs_url` runs them: on Kubernetes, its own defaults.

        Only when the document set none of the three timings: they are one design (the fence
        invariant ties them), and one set value mixed with another store's defaults could break it.
        """
        if not dcs_url.startswith("kubernetes://") or self.model_fields_set & TIMING_FIELDS:
            return self
        return self.model_copy(update=KUBERNETES_TIMINGS)

    @model_validator(mode="after")
    def _fencing_invariant(self) -> Failover:
        if self.fence_deadline_seconds <= self.loop_wait_seconds:
            need = 2 * self.loop_wait_seconds + 2 * self.dcs_timeout_seconds
            raise ValueError(
                "ttlSeconds must exceed 2 × loopWaitSeconds + 2 × dcsTimeoutSeconds so a leader "
                f"that cannot renew fences itself before its lease expires; need > {need:g}, "
                f"got ttlSeconds={self.ttl_seconds:g}"
            )
        return self


class Network(_Model):
    """Who may connect over TCP."""

    allowed_cidrs: list[str] = Field(
        default_factory=lambda: ["samenet"],
        description="Where clients and replicas may connect from: CIDRs, or `samenet` (the node's own subnets).",
    )

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("must list at least one CIDR (e.g. 10.0.0.0/8) or `samenet`")
        for value in values:
            if value in ("samenet", "samehost"):
                continue
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a CIDR such as 10.244.0.0/16 or 198.18.0.0/24, nor `samenet`"
                ) from None
            if "/" not in value:
                raise ValueError(f"{value!r} needs a prefix length, e.g. {value}/32")
        return values


class Users(_Model):
    """Role names; their passwords live in 0600 files (locally) or a Secret (Kubernetes)."""

    superuser: str = Field(default="postgres", description="Database superuser (also the OS user locally).")
    replication: str = Field(default="replicator", description="Role with REPLICATION and LOGIN only.")

    @field_validator("superuser", "replication")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _PG_IDENTIFIER.fullmatch(value):  # `$` would let "x\n" through
            raise ValueError(f"must be a plain PostgreSQL identifier (lower-case letters, digits, _); got {value!r}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> Users:
        if self.superuser == self.replication:
            raise ValueError("replication: must differ from the superuser so replicas hold no superuser password")
        return self


class Tls(_Model):
    """Certificates from a cluster CA for clients and replication."""

    enabled: bool = Field(
        default=True,
        description="TLS for clients and replication: ssl = on, hostssl rules, sslmode=verify-full between nodes.",
    )
    certificate_days: int = Field(default=365, ge=2, le=3650, description="Lifetime of each node's certificate.")
    renew_before_days: int = Field(default=30, ge=1, le=365, description="Renew (and reload) this long before expiry.")

    @model_validator(mode="after")
    def _renewal_fits(self) -> Tls:
        if self.renew_before_days >= self.certificate_days:
            raise ValueError(
                f"renewBeforeDays ({self.renew_before_days}) must be below certificateDays ({self.certificate_days}), "
                "or every certificate would be renewed at once"
            )
        return self


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            "must be a DNS-1123 label of at most 63 characters: lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit; got {value!r}"
        )
    return value


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(f"must be an IP address or a DNS name such as db1.example.net; got {value!r}")
    return value


def _absolute_file(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute file path (the agent may run from any directory); got {value!r}")
    return value


AbsoluteFile = Annotated[str, AfterValidator(_absolute_file)]


class MemberSpec(_Model):
    """One machine of the cluster: where it is reached and whether it may lead."""

    name: Annotated[str, AfterValidator(_dns_label)] = Field(
        description="Member name: a DNS-1123 label, unique in the cluster; `pgkeel node run --member` takes it."
    )
    host: Annotated[str, AfterValidator(_host)] | None = Field(
        default=None,
        description="Address or DNS name the other machines reach this member at; required with store.etcd.",
    )
    pg_port: int = Field(default=5432, ge=1, le=65535, description="PostgreSQL's TCP port on the host.")
    api_port: int = Field(default=8008, ge=1, le=65535, description="The agent's HTTP API port on the host.")
    no_failover: bool = Field(
        default=False,
        description="Never promoted automatically (a switchover or forced failover naming it still can); in "
        "quorum mode also never in the synchronous set (its acknowledgement could not be relied on in a failover).",
    )
    failover_priority: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="0 = never promoted automatically (as Patroni); higher wins among equally up-to-date "
        "candidates.",
    )
    no_sync: bool = Field(default=False, description="Never in the synchronous set: commits do not wait for it.")

    @model_validator(mode="after")
    def _ports_differ(self) -> MemberSpec:
        if self.pg_port == self.api_port:
            raise ValueError(f"apiPort: must differ from pgPort ({self.pg_port}) on the same host")
        return self


class EtcdTls(_Model):
    """TLS towards etcd: the CA that signed etcd's server certificates, and an optional client certificate."""

    ca: AbsoluteFile = Field(description="PEM file of the CA that signed the etcd servers' certificates.")
    cert: AbsoluteFile | None = Field(default=None, description="PEM client certificate (etcd --client-cert-auth).")
    key: AbsoluteFile | None = Field(default=None, description="PEM private key of `cert` (a 0600 file).")

    @model_validator(mode="after")
    def _cert_with_key(self) -> EtcdTls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key: give both (a client certificate needs its key) or neither")
        return self


class EtcdAuth(_Model):
    """etcd's username/password authentication (v3 auth/authenticate); the password lives in a file."""

    user: str = Field(description="etcd user; its role needs readwrite on the cluster's key prefix /pgkeel/<name>/.")
    password_file: AbsoluteFile = Field(description="File (0600) whose first line is the etcd user's password.")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"must be a non-empty etcd user name without spaces; got {value!r}")
        return value


class EtcdStore(_Model):
    """An etcd v3 cluster (3.4 or newer, JSON gateway) as the coordination store."""

    endpoints: list[str] = Field(description="Client URLs of the etcd members, e.g. https://198.18.0.1:2379.")
    tls: EtcdTls | None = Field(default=None, description="Needed when the endpoints are https://.")
    auth: EtcdAuth | None = Field(default=None, description="Username/password authentication, if etcd has it on.")

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("must list at least one etcd client URL, e.g. https://198.18.0.1:2379")
        for value in values:
            match = re.fullmatch(r"(https?)://([^/:\[\]]+|\[[0-9a-fA-F:]+\]):(\d{1,5})/?", value)
            if match is None or not 0 < int(match.group(3)) < 65536:
                raise ValueError(
                    f"{value!r} is not an etcd client URL such as https://198.18.0.1:2379 (scheme, host, port)"
                )
        if len({v.split("://")[0] for v in values}) > 1:
            raise ValueError("mixes http:// and https://: use one scheme for every endpoint")
        return values

    @property
    def secure(self) -> bool:
        return self.endpoints[0].startswith("https://")

    @model_validator(mode="after")
    def _tls_matches_scheme(self) -> EtcdStore:
        if self.secure and self.tls is None:
            raise ValueError("tls: required with https:// endpoints; set tls.ca to the etcd CA certificate file")
        if not self.secure and self.tls is not None:
            raise ValueError("endpoints: tls is set but the endpoints are http://; use https:// URLs")
        return self


class Store(_Model):
    """Where the agents agree; absent = the engine's default (sqlite locally, a Lease on Kubernetes)."""

    etcd: EtcdStore | None = Field(default=None, description="An etcd v3 cluster: the store for several machines.")


class ClusterSpec(_Model):
    """The cluster: every field has a default."""

    instances: int = Field(
        default=3, json_schema_extra={"minimum": 1, "maximum": 9}, description="Number of nodes: 2n+1 (1, 3, 5, 7, 9)."
    )
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    resources: Resources = Field(default_factory=Resources)
    storage: Storage = Field(default_factory=Storage)
    workload: Literal["oltp", "web", "dw", "mixed"] = Field(
        default="oltp",
        description="What the tuning assumes: connections, work_mem and statistics targets follow pgtune's profiles.",
    )
    replication: Replication = Field(default_factory=Replication)
    failover: Failover = Field(default_factory=Failover)
    network: Network = Field(default_factory=Network)
    users: Users = Field(default_factory=Users)
    tls: Tls = Field(default_factory=Tls)
    backup: BackupSpec | None = Field(
        default=None, description="Base backups and WAL archiving with pgBackRest; none when unset."
    )
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    members: list[MemberSpec] = Field(
        default_factory=list,
        description="The machines, one entry per instance; default: generated names <name>-0, <name>-1, ….",
    )
    store: Store = Field(default_factory=Store)

    @field_validator("members")
    @classmethod
    def _unique_members(cls, values: list[MemberSpec]) -> list[MemberSpec]:
        names = [m.name for m in values]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"member names must be unique; {', '.join(twice)} appear(s) more than once")
        places = [(m.host, p) for m in values if m.host for p in (m.pg_port, m.api_port)]
        clash = sorted({f"{h}:{p}" for h, p in places if places.count((h, p)) > 1})
        if clash:
            raise ValueError(f"two members use the same host and port {', '.join(clash)}; give each its own port")
        return values

    @field_validator("instances")
    @classmethod
    def _odd(cls, value: int) -> int:
        problem = instances_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _replication_fits(self) -> ClusterSpec:
        if self.replication.mode == "quorum":
            replicas = self.instances - 1
            if replicas == 0:
                raise ValueError(
                    "replication.mode: quorum needs at least 3 instances (a single node has no "
                    "standby to wait for); set replication.mode: async or instances: 3"
                )
            k = self.replication.sync_standbys
            if k is not None and k > replicas:
                raise ValueError(
                    f"replication.syncStandbys: at most instances - 1 = {replicas} standbys exist; got {k}"
                )
        return self

    @model_validator(mode="after")
    def _members_fit(self) -> ClusterSpec:
        if self.members and len(self.members) != self.instances:
            raise ValueError(
                f"spec.members lists {len(self.members)} member(s) but spec.instances is {self.instances}: "
                f"list exactly one member per instance, or set instances: {len(self.members)}"
            )
        if self.store.etcd is not None:
            if not self.members:
                raise ValueError(
                    "spec.members: required with spec.store.etcd; list each machine as {name, host} "
                    f"({self.instances} entries)"
                )
            hostless = [f"spec.members[{i}].host" for i, m in enumerate(self.members) if m.host is None]
            if hostless:
                raise ValueError(
                    f"{', '.join(hostless)}: required with spec.store.etcd; set the address or DNS name "
                    "the other machines reach that member at"
                )
        return self

    @model_validator(mode="after")
    def _backlog_fits(self) -> ClusterSpec:
        """The archive backlog shares the fifth of the volume kept for others with the slots, which keep two
        segments at least; past that the WAL budget (half the volume) could not hold."""
        if self.backup is None:
            return self
        limit = self.storage.size_bytes // HELD_WAL_DIVISOR - 2 * WAL_SEGMENT
        backlog = self.archive_backlog_bytes
        if backlog < 2 * WAL_SEGMENT or backlog > limit:
            raise ValueError(
                f"backup.archive.maxBacklog: {self.backup.archive.max_backlog} is outside 32Mi … {limit // 2**20}Mi "
                f"(a fifth of the {self.storage.size} volume, less 32Mi that replication slots keep); set a size "
                "in that range, or enlarge spec.storage.size"
            )
        return self

    @property
    def archive_backlog_bytes(self) -> int:
        """The bound on WAL waiting for the archive (0 without spec.backup): part of the WAL budget."""
        return 0 if self.backup is None else self.backup.archive.backlog_bytes(self.storage.size_bytes)

    @property
    def tolerated_failures(self) -> int:
        """n in 2n+1: how many nodes may be lost at once with a primary still electable."""
        return (self.instances - 1) // 2

    @property
    def sync_excluded(self) -> list[str]:
        """Members tagged out of the synchronous set (noSync, noFailover, failoverPriority 0)."""
        return [m.name for m in self.members if m.no_sync or m.no_failover or m.failover_priority == 0]

    @property
    def sync_eligible(self) -> int:
        """Standbys that may be in a primary's synchronous set, counted for a primary that is not itself tagged."""
        return self.instances - 1 - len(self.sync_excluded)

    @property
    def sync_standbys(self) -> int:
        """The k in effect: the document's value, or n so that any n failures stay survivable (at most the
        standbys that may be synchronous)."""
        return sync_standbys_for(self.replication.mode, self.instances, self.sync_eligible,
                                 self.replication.sync_standbys)

    @model_validator(mode="after")
    def _sync_set_fits_tags(self) -> ClusterSpec:
        if self.replication.mode != "quorum" or self.instances == 1 or not self.sync_excluded:
            return self
        eligible, tagged = self.sync_eligible, ", ".join(self.sync_excluded)
        if eligible < 1:
            raise ValueError(
                f"spec.members: {tagged} are tagged noSync/noFailover, which leaves a primary no standby for its "
                "synchronous set in quorum mode; untag one, or set replication.mode: async"
            )
        k = self.replication.sync_standbys
        if k is not None and k > eligible:
            raise ValueError(
                f"replication.syncStandbys: {k}, but only {eligible} standby(s) may be synchronous ({tagged} are "
                f"tagged noSync/noFailover in spec.members); set syncStandbys to at most {eligible} or untag members"
            )
        return self

    def warnings(self) -> list[str]:
        """Choices that are allowed but give something up; shown by validate/up, never fatal."""
        found: list[str] = []
        k, n = self.sync_standbys, self.tolerated_failures
        tagged = ", ".join(self.sync_excluded)
        if self.replication.mode == "quorum" and self.sync_excluded and 0 < k == self.sync_eligible:
            found.append(
                f"spec.members: with {tagged} tagged noSync/noFailover a primary has {k} standby(s) that may be "
                f"synchronous and syncStandbys is {k}: any one of them down stops writes; untag members"
                + (" or set replication.syncStandbys below it" if k > 1 else "")
            )
        if self.replication.mode == "quorum" and 0 < k < n and self.replication.sync_standbys is None:
            found.append(
                f"spec.members: {tagged} tagged noSync/noFailover leave {self.sync_eligible} standby(s) that may be "
                f"synchronous, so syncStandbys defaults to {k} < n = {n}: losing the primary and {k} more node(s) "
                f"at once may leave no provable candidate; untag members to survive any {n} failures"
            )
        elif self.replication.mode == "quorum" and 0 < k < n:
            need = self.instances - 1 - k + 1
            found.append(
                f"replication.syncStandbys: {k} < n = {n}: a failover must hear from {need} of the "
                f"{self.instances - 1} replicas to prove no acknowledged commit is lost, so losing the primary and "
                f"{k} more node(s) at once leaves the cluster without a primary; "
                f"set syncStandbys: {n} (or leave it unset) to survive any {n} failures"
            )
        if self.instances > 1 and self.members and all(m.no_failover or m.failover_priority == 0
                                                        for m in self.members):
            found.append(
                "spec.members: every member has noFailover or failoverPriority 0, so no automatic failover can "
                "happen; allow at least one member to be promoted"
            )
        etcd = self.store.etcd
        if etcd is not None and etcd.auth is not None and not etcd.secure:
            found.append(
                "spec.store.etcd.auth: the etcd password crosses the network in clear over http://; "
                "use https:// endpoints with tls"
            )
        return found


class PostgresCluster(_Model):
    """One highly available PostgreSQL cluster."""

    api_version: Literal["pgkeel.dev/v1alpha1"] = Field(alias="apiVersion", description="The document's version.")
    kind: Literal["PostgresCluster"] = Field(description="The document's kind.")
    metadata: Metadata
    spec: ClusterSpec = Field(default_factory=ClusterSpec)

    @property
    def name(self) -> str:
        return self.metadata.name

    def member_names(self) -> list[str]:
        """The members' names: spec.members when given, else as a StatefulSet names its pods: <name>-0, …"""
        if self.spec.members:
            return [m.name for m in self.spec.members]
        return [f"{self.metadata.name}-{i}" for i in range(self.spec.instances)]

    def member_spec(self, name: str) -> MemberSpec:
        """The entry of member `name`: the document's, or defaults for a generated name; KeyError if neither."""
        for member in self.spec.members:
            if member.name == name:
                return member
        if not self.spec.members and name in self.member_names():
            return MemberSpec(name=name)
        raise KeyError(f"no member {name!r} in the document; members are {', '.join(self.member_names())}")


def schema_for_crd() -> dict[str, Any]:
    """JSON schema of the spec (by alias), used to generate the CRD's OpenAPI schema."""
    return ClusterSpec.model_json_schema(by_alias=True)
