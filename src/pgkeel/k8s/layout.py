"""Names, paths and ports shared by the manifests and the in-pod agent.

Both sides import these constants so a rename cannot silently break the contract
between what `pgkeel render k8s` emits and what `pgkeel agent --kubernetes` expects.
"""

from __future__ import annotations

# --- images -----------------------------------------------------------------
DEFAULT_IMAGE = "ghcr.io/pgkeel/pgkeel:0.1.0"
CONTAINER_NAME = "postgres"
AGENT_COMMAND = ["pgkeel", "agent", "--kubernetes"]

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
SECRET_SUFFIX = "-secrets"
AGENT_SUFFIX = "-agent"  # ServiceAccount, Role, RoleBinding
PDB_SUFFIX = "-pdb"
NETPOL_SUFFIX = "-netpol"
LEADER_LEASE_SUFFIX = "-leader"

# --- paths inside the pod ---------------------------------------------------------
CONFIG_DIR = "/etc/postgresql"
CONFIG_FILE = f"{CONFIG_DIR}/postgresql.conf"
HBA_FILE = f"{CONFIG_DIR}/pg_hba.conf"
CLUSTER_FILE = f"{CONFIG_DIR}/cluster.yaml"
SECRETS_DIR = "/etc/pgkeel/secrets"
DATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{DATA_MOUNT}/pgdata"
RUN_DIR = "/var/run/postgresql"
TMP_DIR = "/tmp"

# --- ConfigMap / Secret keys --------------------------------------------------------
CONF_KEY = "postgresql.conf"
HBA_KEY = "pg_hba.conf"
CLUSTER_KEY = "cluster.yaml"
SUPERUSER_PASSWORD_KEY = "superuser-password"
REPLICATION_PASSWORD_KEY = "replication-password"
API_TOKEN_KEY = "api-token"
CA_CERT_KEY = "ca.crt"  # the cluster CA: each agent issues its own server certificate with it
CA_KEY_KEY = "ca.key"
SECRET_KEYS = (SUPERUSER_PASSWORD_KEY, REPLICATION_PASSWORD_KEY, API_TOKEN_KEY, CA_CERT_KEY, CA_KEY_KEY)

# --- volumes -------------------------------------------------------------------------
DATA_VOLUME = "data"
CONFIG_VOLUME = "config"
SECRETS_VOLUME = "secrets"

# --- labels and annotations -----------------------------------------------------------
ROLE_LABEL = "pgkeel.dev/role"
ROLE_PRIMARY = "primary"
ROLE_REPLICA = "replica"
STATUS_ANNOTATION = "pgkeel.dev/status"
CONFIG_HASH_ANNOTATION = "pgkeel.dev/config-hash"
POSTGRES_ARGS_ANNOTATION = "pgkeel.dev/postgres-args"

# --- environment variables the agent reads -----------------------------------------------
ENV_POD_NAME = "POD_NAME"
ENV_POD_IP = "POD_IP"
ENV_POD_NAMESPACE = "POD_NAMESPACE"
ENV_CLUSTER = "PGKEEL_CLUSTER"
ENV_PGDATA = "PGDATA"
ENV_POSTGRES_ARGS = "PGKEEL_POSTGRES_ARGS"
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


def leader_lease(name: str) -> str:
    """Name of the coordination.k8s.io Lease the agents compete for."""
    return f"{name}{LEADER_LEASE_SUFFIX}"


def common_labels(name: str) -> dict[str, str]:
    """Labels on every object of a cluster."""
    return {
        "app.kubernetes.io/name": "pgkeel",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/managed-by": "pgkeel",
    }


def selector_labels(name: str) -> dict[str, str]:
    """Labels that select the pods of a cluster (stable: a StatefulSet selector is immutable)."""
    return {"app.kubernetes.io/name": "pgkeel", "app.kubernetes.io/instance": name}
