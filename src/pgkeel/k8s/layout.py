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
