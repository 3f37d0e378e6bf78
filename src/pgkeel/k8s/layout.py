"""Names, paths and ports shared by the manifests and the in-pod agent.

Both sides import these constants so a rename cannot silently break the contract
between what `pgkeel render k8s` emits and what `pgkeel agent --kubernetes` expects. The names
the agent's Kubernetes store relies on are owned by the store (`pgkeel.dcs.k8s_contract`) and
re-exported here.
"""

from __future__ import annotations

from pgkeel.dcs.k8s_contract import LEADER_LEASE_SUFFIX as LEADER_LEASE_SUFFIX
from pgkeel.dcs.k8s_contract import ROLE_LABEL as ROLE_LABEL
from pgkeel.dcs.k8s_contract import ROLE_PRIMARY as ROLE_PRIMARY
from pgkeel.dcs.k8s_contract import ROLE_REPLICA as ROLE_REPLICA
from pgkeel.dcs.k8s_contract import STATE_LEASE_SUFFIX as STATE_LEASE_SUFFIX
from pgkeel.dcs.k8s_contract import STATUS_ANNOTATION as STATUS_ANNOTATION
from pgkeel.dcs.k8s_contract import common_labels as common_labels
from pgkeel.dcs.k8s_contract import leader_lease as leader_lease
from pgkeel.dcs.k8s_contract import selector_labels as selector_labels
from pgkeel.dcs.k8s_contract import state_lease as state_lease
from pgkeel.document import MAX_INSTANCES
from pgkeel.document.backup import PGBACKREST_CONF

# --- images -----------------------------------------------------------------
DEFAULT_IMAGE = "ghcr.io/pgkeel/pgkeel:0.1.0"
CONTAINER_NAME = "postgres"
AGENT_COMMAND = ["pgkeel", "agent", "--kubernetes"]

# --- stopping ------------------------------------------------------------------
# What a leader's agent spends switching over on SIGTERM before it stops postgres (pgkeel.agent.drain);
# terminationGracePeriodSeconds covers it and the stop (pgkeel.k8s.manifests).
HAND_OVER_SECONDS = 30

# --- uid/gid of the postgres user in the image (Dockerfile pins it) ----------
POSTGRES_UID = 999
POSTGRES_GID = 999

# --- ports --------------------------------------------------------------------
PG_PORT = 5432
PG_PORT_NAME = "postgresql"
API_PORT = 8008
API_PORT_NAME = "api"

# --- object name suffixes -------------------------------------------------------
HEADLESS_SUFFIX = "-hl"
RW_SUFFIX = "-rw"
RO_SUFFIX = "-ro"
CONFIGMAP_SUFFIX = "-config"
SECRET_SUFFIX = "-secrets"  # passwords and API token
CERTS_SUFFIX = "-certs"  # the CA certificate and every pod's server certificate (no CA key)
BACKUP_SECRET_SUFFIX = "-backup"  # spec.backup's S3 keys and cipher passphrase, as pgBackRest options
AGENT_SUFFIX = "-agent"  # ServiceAccount, Role, RoleBinding
PDB_SUFFIX = "-pdb"
NETPOL_SUFFIX = "-netpol"

# --- paths inside the pod ---------------------------------------------------------
CONFIG_DIR = "/etc/postgresql"
CONFIG_FILE = f"{CONFIG_DIR}/postgresql.conf"
HBA_FILE = f"{CONFIG_DIR}/pg_hba.conf"
CLUSTER_FILE = f"{CONFIG_DIR}/cluster.yaml"
SECRETS_DIR = "/etc/pgkeel/secrets"
CERTS_DIR = "/etc/pgkeel/certs"
DATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_MOUNT}/pgdata"
RUN_DIR = "/var/run/postgresql"
TMP_DIR = "/tmp"
# pgBackRest's log and the drills' scratch copies on the data volume (sized for the database), its locks in /tmp.
BACKUP_DIR = f"{DATA_MOUNT}/backup"
BACKUP_LOG_DIR = f"{BACKUP_DIR}/log"
BACKUP_LOCK_DIR = f"{TMP_DIR}/pgbackrest"

# --- ConfigMap / Secret keys --------------------------------------------------------
CONF_KEY = "postgresql.conf"
HBA_KEY = "pg_hba.conf"
PGBACKREST_KEY = PGBACKREST_CONF  # only with spec.backup; no secret in it (pgkeel.k8s.backups)
CLUSTER_KEY = "cluster.yaml"
SUPERUSER_PASSWORD_KEY = "superuser-password"
REPLICATION_PASSWORD_KEY = "replication-password"
API_TOKEN_KEY = "api-token"
SECRET_KEYS = (SUPERUSER_PASSWORD_KEY, REPLICATION_PASSWORD_KEY, API_TOKEN_KEY)
CA_CERT_KEY = "ca.crt"  # in the certs Secret, beside `<pod>.crt` / `<pod>.key` (see pod_cert_keys)
# The CA key stays on the operator's machine. Secrets rendered before it moved out held it under
# this key; an agent that finds it there still issues its own certificate (see agent.from_env).
CA_KEY_KEY = "ca.key"

# --- volumes -------------------------------------------------------------------------
DATA_VOLUME = "data"
CONFIG_VOLUME = "config"
SECRETS_VOLUME = "secrets"
CERTS_VOLUME = "certs"


def backup_volume(index: int) -> str:
    """Volume of spec.backup.repositories[index] (a ReadWriteMany claim), mounted at its path in every pod."""
    return f"backup-repo{index + 1}"

# --- labels and annotations -----------------------------------------------------------
CONFIG_HASH_ANNOTATION = "pgkeel.dev/config-hash"
POSTGRES_ARGS_ANNOTATION = "pgkeel.dev/postgres-args"

# --- environment variables the agent reads -----------------------------------------------
ENV_POD_NAME = "POD_NAME"
ENV_POD_IP = "POD_IP"
ENV_POD_NAMESPACE = "POD_NAMESPACE"
ENV_CLUSTER = "PGKEEL_CLUSTER"
ENV_PGDATA = "PGDATA"
ENV_POSTGRES_ARGS = "PGKEEL_POSTGRES_ARGS"
ENV_CLUSTER_DOMAIN = "PGKEEL_CLUSTER_DOMAIN"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
POSTGRES_ARGS = f"-c config_file={CONFIG_FILE}"

# --- HTTP API paths used by the probes ------------------------------------------------------
LIVENESS_PATH = "/liveness"
READINESS_PATH = "/readiness"


def headless_service(name: str) -> str:
    """Name of the headless Service that gives every pod a stable DNS name."""
    return f"{name}{HEADLESS_SUFFIX}"


def pod_fqdn(pod: str, name: str, namespace: str) -> str:
    """Stable DNS name of a pod (resolvable before it is ready: publishNotReadyAddresses)."""
    return f"{pod}.{headless_service(name)}.{namespace}.svc"


def client_services(name: str) -> list[str]:
    """The Services clients connect to: read-write (the primary) and read-only (replicas)."""
    return [f"{name}{RW_SUFFIX}", f"{name}{RO_SUFFIX}"]


def stateful_set_pods(name: str) -> list[str]:
    """Every pod the StatefulSet `name` may run, `kubectl scale` included: `<name>-0` … up to the document's
    maximum of instances. The Role's pod deletions and the issued certificates name these, not only the
    document's members, so pods added by a scaling can roll and serve TLS like the first ones."""
    return [f"{name}-{i}" for i in range(MAX_INSTANCES)]


def ordinal(pod: str, name: str) -> int | None:
    """The ordinal of `<name>-<ordinal>`, a pod of the StatefulSet `name`; None for any other name."""
    head, _, tail = pod.rpartition("-")
    return int(tail) if head == name and tail.isdigit() and str(int(tail)) == tail else None


def pod_cert_keys(pod: str) -> tuple[str, str]:
    """Keys of a pod's server certificate and private key in the certs Secret."""
    return f"{pod}.crt", f"{pod}.key"


def _dns_forms(host: str, namespace: str, domain: str) -> list[str]:
    return [host, f"{host}.{namespace}", f"{host}.{namespace}.svc", f"{host}.{namespace}.svc.{domain}"]


def server_names(pod: str, name: str, namespace: str, domain: str = DEFAULT_CLUSTER_DOMAIN) -> list[str]:
    """Every DNS name a client may use for this pod's postgres, so `sslmode=verify-full` accepts any of them.

    The pod through the headless Service, and the client Services (a pod is behind `-rw` or `-ro`
    depending on its role, which changes), each short, with the namespace, `.svc` and the full
    cluster domain; `localhost` for a port-forward.
    """
    names = _dns_forms(f"{pod}.{headless_service(name)}", namespace, domain)
    for svc in client_services(name):
        names += _dns_forms(svc, namespace, domain)
    return [*names, "localhost"]
