"""The Kubernetes objects of one cluster, as plain dicts, ready for `kubectl apply -f -`.

Names, paths and ports come from `layout` so the in-pod agent reads exactly what is rendered here.
The postgresql.conf and pg_hba.conf in the ConfigMap are `render_config`'s output, unchanged:
the same files a local cluster gets. No Secret is rendered here, so applying this output again never
changes a credential: the StatefulSet names the Secrets that `pgkeel.k8s.secrets` makes once.
With spec.backup the ConfigMap also holds pgbackrest.conf, without secrets (`pgkeel.k8s.backups`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import yaml

from pgkeel.document import PostgresCluster, parse_bytes
from pgkeel.k8s import backups, layout
from pgkeel.k8s.rbac import named_calls, role_rules
from pgkeel.pgconf import render_config

Manifest = dict[str, Any]

# SIGTERM on the primary's pod: the agent first switches over (up to HAND_OVER_SECONDS, pgkeel.agent.drain),
# then stops postgres (fast for up to 60 s, then immediate for up to 60 s) and releases; the kubelet's
# SIGKILL must come after all of it, or the release is skipped and the others wait out the lease.
STOP_SECONDS = 120
TERMINATION_GRACE_SECONDS = layout.HAND_OVER_SECONDS + STOP_SECONDS + 10


def _labels(cluster: PostgresCluster) -> dict[str, str]:
    # The document's own labels first, so they can never override the ones selectors rely on.
    return {**cluster.metadata.labels, **layout.common_labels(cluster.name)}


def object_meta(cluster: PostgresCluster, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": cluster.metadata.namespace, "labels": _labels(cluster), **extra}


def cluster_document(cluster: PostgresCluster) -> str:
    """The document with every default filled in: what the agent reads from `cluster.yaml`."""
    return yaml.safe_dump(cluster.model_dump(mode="json", by_alias=True), sort_keys=False)


def config_data(cluster: PostgresCluster) -> dict[str, str]:
    rendered = render_config(cluster, config_dir=layout.CONFIG_DIR)
    data = {
        layout.CONF_KEY: rendered.postgresql_conf,
        layout.HBA_KEY: rendered.pg_hba_conf,
        layout.CLUSTER_KEY: cluster_document(cluster),
    }
    if cluster.spec.backup is not None:  # beside postgresql.conf: where archive_command and the agent look
        data[layout.PGBACKREST_KEY] = backups.pgbackrest_conf(cluster)
    return data


def config_hash(data: Mapping[str, str]) -> str:
    """Stable digest of the ConfigMap's content, carried by the pod template so a change is visible."""
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key].encode() + b"\0")
    return digest.hexdigest()[:16]


def config_map(cluster: PostgresCluster, data: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, cluster.name + layout.CONFIGMAP_SUFFIX),
        "data": dict(data),
    }


def _service(cluster: PostgresCluster, name: str, selector: dict[str, str], **spec: Any) -> Manifest:
    ports = [
        {"name": layout.PG_PORT_NAME, "port": layout.PG_PORT, "targetPort": layout.PG_PORT_NAME, "protocol": "TCP"}
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(cluster, name),
        "spec": {"selector": selector, "ports": ports, **spec},
    }


def services(cluster: PostgresCluster) -> list[Manifest]:
    """Headless (peer DNS, before readiness), read-write (the primary) and read-only (replicas)."""
    sel = layout.selector_labels(cluster.name)
    headless = _service(
        cluster, layout.headless_service(cluster.name), sel, clusterIP="None", publishNotReadyAddresses=True
    )
    headless["spec"]["ports"].append(
        {"name": layout.API_PORT_NAME, "port": layout.API_PORT, "targetPort": layout.API_PORT_NAME, "protocol": "TCP"}
    )
    rw = _service(
        cluster, cluster.name + layout.RW_SUFFIX, {**sel, layout.ROLE_LABEL: layout.ROLE_PRIMARY}, type="ClusterIP"
    )
    ro = _service(
        cluster, cluster.name + layout.RO_SUFFIX, {**sel, layout.ROLE_LABEL: layout.ROLE_REPLICA}, type="ClusterIP"
    )
    return [headless, rw, ro]


def rbac(cluster: PostgresCluster) -> list[Manifest]:
    """ServiceAccount, Role and RoleBinding: only the calls the agent makes (see `rbac.AGENT_API_CALLS`)."""
    name = cluster.name + layout.AGENT_SUFFIX
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_meta(cluster, name)}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": object_meta(cluster, name),
        "rules": role_rules(names=named_calls(cluster.name, layout.stateful_set_pods(cluster.name))),
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(cluster, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": cluster.metadata.namespace}],
    }
    return [account, role, binding]


def pod_disruption_budget(cluster: PostgresCluster) -> Manifest:
    """At most one pod down by voluntary disruption (drains), so a quorum always remains. Evictions honour it;
    the agents' own roll steps are plain deletes, which it does not gate: the roll lock does (pgkeel.ha.rollout)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(cluster, cluster.name + layout.PDB_SUFFIX),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": layout.selector_labels(cluster.name)}},
    }


def network_policy(cluster: PostgresCluster) -> Manifest:
    """Ingress to 5432 and 8008 from the cluster's own pods; 5432 also from spec.network.allowedCidrs.

    `samenet` cannot be expressed as a NetworkPolicy peer, so when it is listed port 5432 stays open
    at this layer and pg_hba.conf does the filtering; the API port is always peers-only.
    """
    sel = layout.selector_labels(cluster.name)
    pg = {"protocol": "TCP", "port": layout.PG_PORT}
    api = {"protocol": "TCP", "port": layout.API_PORT}
    cidrs = cluster.spec.network.allowed_cidrs
    ingress: list[dict[str, Any]] = [{"from": [{"podSelector": {"matchLabels": sel}}], "ports": [pg, api]}]
    if any(c in ("samenet", "samehost") for c in cidrs):
        ingress.append({"ports": [pg]})
    else:
        ingress.append({"from": [{"ipBlock": {"cidr": c}} for c in cidrs], "ports": [pg]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(cluster, cluster.name + layout.NETPOL_SUFFIX),
        "spec": {"podSelector": {"matchLabels": sel}, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def _env(cluster: PostgresCluster) -> list[dict[str, Any]]:
    def field(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    return [
        field(layout.ENV_POD_NAME, "metadata.name"),
        field(layout.ENV_POD_IP, "status.podIP"),
        field(layout.ENV_POD_NAMESPACE, "metadata.namespace"),
        {"name": layout.ENV_CLUSTER, "value": cluster.name},
        {"name": layout.ENV_PGDATA, "value": layout.PGDATA},
        {"name": layout.ENV_POSTGRES_ARGS, "value": layout.POSTGRES_ARGS},
        *backups.env(cluster),
    ]


def _probe(path: str, period: int, failures: int, timeout: int = 3) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": layout.API_PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _container(cluster: PostgresCluster, image: str) -> dict[str, Any]:
    res = cluster.spec.resources
    # requests == limits: Guaranteed QoS, and exactly the numbers the tuning assumed.
    amounts = {"cpu": res.cpu, "memory": res.memory}
    return {
        "name": layout.CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(layout.AGENT_COMMAND),
        "env": _env(cluster),
        "ports": [
            {"name": layout.PG_PORT_NAME, "containerPort": layout.PG_PORT, "protocol": "TCP"},
            {"name": layout.API_PORT_NAME, "containerPort": layout.API_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        # All three ask the agent's API; /liveness reflects only the agent loop, so a long
        # recovery or clone never gets the container killed.
        "startupProbe": _probe(layout.LIVENESS_PATH, period=2, failures=30),
        "livenessProbe": _probe(layout.LIVENESS_PATH, period=10, failures=3, timeout=5),
        "readinessProbe": _probe(layout.READINESS_PATH, period=5, failures=3),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": layout.POSTGRES_UID,
            "runAsGroup": layout.POSTGRES_GID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": layout.DATA_VOLUME, "mountPath": layout.DATA_MOUNT},
            {"name": layout.CONFIG_VOLUME, "mountPath": layout.CONFIG_DIR, "readOnly": True},
            {"name": layout.SECRETS_VOLUME, "mountPath": layout.SECRETS_DIR, "readOnly": True},
            *(
                [{"name": layout.CERTS_VOLUME, "mountPath": layout.CERTS_DIR, "readOnly": True}]
                if cluster.spec.tls.enabled
                else []
            ),
            *backups.volume_mounts(cluster),
            {"name": "tmp", "mountPath": layout.TMP_DIR},
            {"name": "run", "mountPath": layout.RUN_DIR},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }


def _affinity(cluster: PostgresCluster) -> dict[str, Any]:
    sel = {"matchLabels": layout.selector_labels(cluster.name)}
    spread = [(100, "kubernetes.io/hostname"), (50, "topology.kubernetes.io/zone")]
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": weight, "podAffinityTerm": {"labelSelector": sel, "topologyKey": key}}
                for weight, key in spread
            ]
        }
    }


SHM_FLOOR = 64 * 2**20


def shm_size(cluster: PostgresCluster) -> str:
    """/dev/shm's bound: a quarter of the memory limit (at least the runtime's 64Mi), in Mi."""
    memory = parse_bytes(cluster.spec.resources.memory)
    return f"{max(SHM_FLOOR, memory // 4) // 2**20}Mi"


def _volumes(cluster: PostgresCluster) -> list[dict[str, Any]]:
    return [
        {"name": layout.CONFIG_VOLUME, "configMap": {"name": cluster.name + layout.CONFIGMAP_SUFFIX}},
        # 0440, not 0400: the files belong to root and the postgres user reads them through fsGroup.
        {
            "name": layout.SECRETS_VOLUME,
            "secret": {"secretName": cluster.name + layout.SECRET_SUFFIX, "defaultMode": 0o440},
        },
        # The CA certificate and every pod's certificate and key, never the CA key: each agent
        # links its own pair by pod name (agent.from_env). Root-owned 0440 keys are what
        # PostgreSQL accepts from a file it does not own.
        *(
            [
                {
                    "name": layout.CERTS_VOLUME,
                    "secret": {"secretName": cluster.name + layout.CERTS_SUFFIX, "defaultMode": 0o440},
                }
            ]
            if cluster.spec.tls.enabled
            else []
        ),
        *backups.volumes(cluster),
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        # The runtime's default 64M /dev/shm is too small for PostgreSQL's dynamic shared memory (parallel
        # query); bounded, since what it holds counts against the container's memory limit.
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size(cluster)}},
    ]


def _volume_claim(cluster: PostgresCluster) -> dict[str, Any]:
    storage = cluster.spec.storage
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage.size}}}
    if storage.storage_class:
        spec["storageClassName"] = storage.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": layout.DATA_VOLUME, "labels": layout.common_labels(cluster.name)},
        "spec": spec,
    }


def stateful_set(cluster: PostgresCluster, image: str, hash_: str) -> Manifest:
    """One pod per member, `<name>-0` … `<name>-(n-1)`.

    Parallel pod management: with OrderedReady, after a full stop a former replica at ordinal 0
    would wait for a primary that cannot start before it is ready. OnDelete updates: a config or
    image change must not restart the primary behind the agent's back; the agent reloads what a
    reload can change, and the agents replace the pods themselves, one at a time, replicas first and
    the primary after a switchover (pgkeel.ha.rollout, docs/kubernetes.md).
    """
    sel = layout.selector_labels(cluster.name)
    pod_spec = {
        "serviceAccountName": cluster.name + layout.AGENT_SUFFIX,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        # The pause container becomes PID 1 and reaps orphans (backends of a crashed postmaster);
        # the agent is then not PID 1, so SIGTERM reaches it with its normal semantics.
        "shareProcessNamespace": True,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": layout.POSTGRES_UID,
            "runAsGroup": layout.POSTGRES_GID,
            "fsGroup": layout.POSTGRES_GID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "affinity": _affinity(cluster),
        "containers": [_container(cluster, image)],
        "volumes": _volumes(cluster),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(cluster, cluster.name),
        "spec": {
            "serviceName": layout.headless_service(cluster.name),
            "replicas": cluster.spec.instances,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": sel},
            "template": {
                "metadata": {
                    "labels": _labels(cluster),
                    "annotations": {
                        layout.CONFIG_HASH_ANNOTATION: hash_,
                        layout.POSTGRES_ARGS_ANNOTATION: layout.POSTGRES_ARGS,
                    },
                },
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [_volume_claim(cluster)],
        },
    }


def kubernetes_problems(cluster: PostgresCluster) -> list[str]:
    """What the document asks that a StatefulSet cannot give: pods are named <cluster>-<i> on fixed ports."""
    problems: list[str] = []
    for i, member in enumerate(cluster.spec.members):
        at = f"spec.members[{i}]"
        if member.name != f"{cluster.name}-{i}":
            problems.append(f"{at}.name: pods of a StatefulSet are named {cluster.name}-{i}; got {member.name!r}: "
                            f"use name: {cluster.name}-{i} or leave spec.members out")
        if member.host is not None:
            problems.append(f"{at}.host: a pod's address is given by Kubernetes; remove host")
        if member.pg_port != layout.PG_PORT or member.api_port != layout.API_PORT:
            problems.append(f"{at}: pgPort/apiPort are fixed at {layout.PG_PORT}/{layout.API_PORT} in pods; "
                            "remove them")
    if cluster.spec.store.etcd is not None:
        problems.append("spec.store.etcd: on Kubernetes the store is a Lease in the cluster; remove spec.store")
    if cluster.spec.bootstrap.from_backup is not None:
        problems.append("spec.bootstrap.fromBackup: restoring a new cluster is only available with `pgkeel up` yet "
                        "(the pods have no restore step); remove it, or restore locally and clone")
    return problems + backups.backup_problems(cluster)


def render_manifests(
    cluster: PostgresCluster,
    image: str = layout.DEFAULT_IMAGE,
    *,
    include_network_policy: bool = True,
) -> list[Manifest]:
    """Every object of the cluster but its Secrets, in an order `kubectl apply` can create them in.

    The output depends only on the document and the image: applying it again changes nothing that
    was not changed in the document. The Secrets (`pgkeel.k8s.secrets`) are created once, before.
    """
    problems = kubernetes_problems(cluster)
    if problems:
        raise ValueError("; ".join(problems))
    data = config_data(cluster)
    docs: list[Manifest] = [*rbac(cluster)]
    docs.append(config_map(cluster, data))
    docs += services(cluster)
    docs.append(pod_disruption_budget(cluster))
    if include_network_policy:
        docs.append(network_policy(cluster))
    docs.append(stateful_set(cluster, image, config_hash(data)))
    return docs


def dump_yaml(docs: list[Manifest]) -> str:
    """Multi-document YAML; long strings (the config files) as literal blocks for readable diffs."""
    return yaml.dump_all(
        docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True
    )


class _Dumper(yaml.SafeDumper):
    """No `&id001`/`*id001`: objects shared between manifests (labels, selectors) are written out in
    full, so each document reads (and kubectl diffs) on its own."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)
