"""`render k8s`: every manifest valid for Kubernetes 1.29 and the newest schema, and the contract holds."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from k8s_helpers import PASSWORDS, by_kind, cluster, matches, one

from pgkeel.document import parse_cluster
from pgkeel.k8s import layout
from pgkeel.k8s.manifests import config_data, config_hash, dump_yaml, render_manifests
from pgkeel.k8s.rbac import AGENT_API_CALLS, granted, granted_names
from pgkeel.k8s.secrets import generate_credentials, render_secrets
from pgkeel.pgconf import render_config
from pgkeel.tls import create_ca

VERSIONS = ["1.29", kubernetes_validate.latest_version()]
INSTANCES = [1, 3, 5]
CA = create_ca("pg")


def render(instances: int = 3, **spec: Any) -> list[dict[str, Any]]:
    """What a user applies: the Secrets once (`render secrets`), then `render k8s`."""
    c = cluster(instances, **spec)
    return [*render_secrets(c, CA, credentials=PASSWORDS), *render_manifests(c)]


def sts(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "StatefulSet")


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = sts(docs)["spec"]["template"]["spec"]["containers"]
    return c


def test_newest_schema_is_newer_than_129() -> None:
    assert VERSIONS[1] != "1.29" and tuple(map(int, VERSIONS[1].split(".")[:2])) > (1, 29)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("instances", INSTANCES)
def test_every_manifest_validates_strictly(instances: int, version: str) -> None:
    docs = render(instances)
    kinds = [d["kind"] for d in docs]
    for kind in ("ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap", "Service", "PodDisruptionBudget",
                 "NetworkPolicy", "StatefulSet"):
        assert kind in kinds
    for doc in docs:
        # strict: the "-strict" schemas forbid unknown fields; raises on any violation.
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_variants_validate_too(version: str) -> None:
    docs = render(5, storage={"size": "50Gi", "storageClass": "fast"},
                  network={"allowedCidrs": ["10.244.0.0/16", "fd00::/64"]}, resources={"cpu": "500m", "memory": "2Gi"})
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_would_catch_an_unknown_field() -> None:
    """Guard against a validator that silently accepts anything."""
    doc = sts(render())
    doc["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.29", strict=True)


@pytest.mark.parametrize("instances", INSTANCES)
def test_replicas_and_pod_names(instances: int) -> None:
    c = cluster(instances)
    s = sts(render(instances))
    assert s["spec"]["replicas"] == instances
    assert s["metadata"]["name"] == c.name
    assert [f"{s['metadata']['name']}-{i}" for i in range(s["spec"]["replicas"])] == c.member_names()
    # Parallel: a former replica at ordinal 0 must not block the primary at ordinal 1 after a full stop.
    assert s["spec"]["podManagementPolicy"] == "Parallel"


def test_everything_in_the_namespace_with_common_labels() -> None:
    for doc in render():
        meta = doc["metadata"]
        assert meta["namespace"] == "db", doc["kind"]
        assert matches(layout.common_labels("pg"), meta["labels"]), doc["kind"]
        assert meta["labels"]["team"] == "payments"


def test_document_labels_cannot_override_selector_labels() -> None:
    c = parse_cluster({"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster",
                       "metadata": {"name": "pg", "labels": {"app.kubernetes.io/instance": "other"}}})
    s = sts(render_manifests(c))
    assert matches(s["spec"]["selector"]["matchLabels"], s["spec"]["template"]["metadata"]["labels"])


def test_selectors_match_pod_labels() -> None:
    docs = render()
    s = sts(docs)
    pod_labels = s["spec"]["template"]["metadata"]["labels"]
    assert s["spec"]["selector"]["matchLabels"] == layout.selector_labels("pg")
    assert matches(s["spec"]["selector"]["matchLabels"], pod_labels)
    assert matches(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    assert matches(one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], pod_labels)
    for term in s["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"]:
        assert matches(term["podAffinityTerm"]["labelSelector"]["matchLabels"], pod_labels)
    # The role label is patched at run time by the agent: with it, rw selects the primary only.
    for svc, role in (("pg-rw", layout.ROLE_PRIMARY), ("pg-ro", layout.ROLE_REPLICA), ("pg-hl", None)):
        selector = one(docs, "Service", svc)["spec"]["selector"]
        labelled = {**pod_labels, layout.ROLE_LABEL: role} if role else pod_labels
        assert matches(selector, labelled), svc
        if role:
            other = layout.ROLE_REPLICA if role == layout.ROLE_PRIMARY else layout.ROLE_PRIMARY
            assert not matches(selector, {**pod_labels, layout.ROLE_LABEL: other}), svc
            assert not matches(selector, pod_labels), f"{svc} must not select an unlabelled pod"


def test_headless_service_publishes_not_ready_addresses() -> None:
    docs = render()
    hl = one(docs, "Service", layout.headless_service("pg"))
    assert hl["spec"]["clusterIP"] == "None"
    assert hl["spec"]["publishNotReadyAddresses"] is True
    assert {(p["name"], p["port"]) for p in hl["spec"]["ports"]} == {("postgresql", 5432), ("api", 8008)}
    assert sts(docs)["spec"]["serviceName"] == "pg-hl"
    assert layout.pod_fqdn("pg-1", "pg", "db") == "pg-1.pg-hl.db.svc"
    for name in ("pg-rw", "pg-ro"):
        svc = one(docs, "Service", name)["spec"]
        assert [p["port"] for p in svc["ports"]] == [5432]
        assert not svc.get("publishNotReadyAddresses")


def test_config_map_mounted_at_etc_postgresql_and_config_file_passed() -> None:
    docs = render()
    c = cluster()
    cm = one(docs, "ConfigMap", "pg-config")
    rendered = render_config(c, config_dir="/etc/postgresql")
    assert cm["data"]["postgresql.conf"] == rendered.postgresql_conf
    assert cm["data"]["pg_hba.conf"] == rendered.pg_hba_conf
    assert "hba_file = '/etc/postgresql/pg_hba.conf'" in cm["data"]["postgresql.conf"]
    assert parse_cluster(yaml.safe_load(cm["data"]["cluster.yaml"])) == c

    pod = sts(docs)["spec"]["template"]
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_mount = next(m for m in mounts.values() if m["mountPath"] == "/etc/postgresql")
    assert config_mount["readOnly"] is True
    assert volumes[config_mount["name"]]["configMap"]["name"] == "pg-config"

    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert layout.CONFIG_FILE == "/etc/postgresql/postgresql.conf"
    assert env["PGKEEL_POSTGRES_ARGS"] == "-c config_file=/etc/postgresql/postgresql.conf"
    assert pod["metadata"]["annotations"][layout.POSTGRES_ARGS_ANNOTATION] == env["PGKEEL_POSTGRES_ARGS"]
    assert container(docs)["command"] == ["pgkeel", "agent", "--kubernetes"]


def test_config_hash_follows_the_config() -> None:
    def hash_of(docs: list[dict[str, Any]]) -> str:
        return sts(docs)["spec"]["template"]["metadata"]["annotations"][layout.CONFIG_HASH_ANNOTATION]

    assert hash_of(render()) == hash_of(render())
    changed = render(postgres={"parameters": {"work_mem": "64MB"}})
    assert hash_of(changed) != hash_of(render())
    assert hash_of(render()) == config_hash(config_data(cluster()))


def test_data_volume_pgdata_and_resources() -> None:
    docs = render(3, storage={"size": "50Gi", "storageClass": "fast"}, resources={"cpu": "1500m", "memory": "3Gi"})
    s = sts(docs)
    (claim,) = s["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in container(docs)["volumeMounts"]
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["PGDATA"] == "/var/lib/postgresql/data/pgdata" == layout.PGDATA
    res = container(docs)["resources"]
    assert res["limits"] == res["requests"] == {"cpu": "1500m", "memory": "3Gi"}
    assert "storageClassName" not in sts(render())["spec"]["volumeClaimTemplates"][0]["spec"]


def test_downward_api_and_cluster_env() -> None:
    env = {e["name"]: e for e in container(render())["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["PGKEEL_CLUSTER"]["value"] == "pg"


def test_probes_use_the_agent_api_and_liveness_ignores_postgres() -> None:
    c = container(render())
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"postgresql": 5432, "api": 8008}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert ports[get["port"]] == 8008, probe
    assert c["startupProbe"]["httpGet"]["path"] == "/liveness"
    assert c["livenessProbe"]["httpGet"]["path"] == "/liveness"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readiness"
    # The startup probe gives the agent a minute to come up, no more.
    startup = c["startupProbe"]
    assert 20 <= startup["periodSeconds"] * startup["failureThreshold"] <= 300


def test_security_context_and_grace_period() -> None:
    pod = sts(render())["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 60
    assert pod["shareProcessNamespace"] is True  # orphans reaped by the pause container, not the agent
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == psc["runAsGroup"] == psc["fsGroup"] == 999
    csc = container(render())["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
    writable = {m["mountPath"] for m in container(render())["volumeMounts"] if not m.get("readOnly")}
    assert {"/tmp", "/var/run/postgresql", "/var/lib/postgresql/data"} <= writable


def test_anti_affinity_spreads_across_nodes_and_zones() -> None:
    terms = sts(render())["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    keys = {t["podAffinityTerm"]["topologyKey"] for t in terms["preferredDuringSchedulingIgnoredDuringExecution"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in terms


def test_role_grants_exactly_what_the_agent_calls() -> None:
    docs = render()
    role = one(docs, "Role")
    assert granted(role["rules"]) == set(AGENT_API_CALLS)
    assert not any("*" in call for call in granted(role["rules"]))
    assert by_kind(docs, "ClusterRole") == []
    binding = one(docs, "RoleBinding")
    account = one(docs, "ServiceAccount")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "db"}]
    assert sts(docs)["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_agent_api_calls_are_what_the_kubernetes_store_needs() -> None:
    calls = set(AGENT_API_CALLS)
    assert {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")} <= calls
    assert {("", "pods", v) for v in ("get", "list", "watch", "patch")} <= calls
    assert not {c for c in calls if c[1] in ("secrets", "configmaps") or c[2] == "deletecollection"}
    # Rolling updates: read the StatefulSet, delete a pod. Nothing else is deleted, nothing else of apps is read.
    assert {c for c in calls if c[2] == "delete"} == {("", "pods", "delete")}
    assert {c for c in calls if c[0] == "apps"} == {("apps", "statefulsets", "get")}


def test_role_limits_pod_deletion_to_the_members_and_the_statefulset_to_its_own() -> None:
    docs = render(5)
    names = granted_names(one(docs, "Role")["rules"])
    # the members, and the pods `kubectl scale` may add up to the document's maximum (they roll themselves too)
    assert names[("", "pods", "delete")] == {f"pg-{i}" for i in range(9)}
    assert names[("apps", "statefulsets", "get")] == {sts(docs)["metadata"]["name"]} == {"pg"}
    unrestricted = {call for call, only in names.items() if only is None}
    assert unrestricted == set(AGENT_API_CALLS) - {("", "pods", "delete"), ("apps", "statefulsets", "get")}


def test_grace_period_covers_the_hand_over_and_the_stop() -> None:
    pod = sts(render())["spec"]["template"]["spec"]
    # hand-over (pgkeel.agent.drain) + fast stop 60 s + immediate stop 60 s, with room for the release
    assert pod["terminationGracePeriodSeconds"] > layout.HAND_OVER_SECONDS + 120


def test_secrets_hold_the_passwords_and_nothing_else_does() -> None:
    docs = render()
    sec = one(docs, "Secret", "pg-secrets")
    assert sec["type"] == "Opaque" and sec["immutable"] is True
    assert sec["stringData"] == PASSWORDS
    others = dump_yaml([d for d in docs if d["kind"] != "Secret"])
    for value in PASSWORDS.values():
        assert value not in others
    cm = one(docs, "ConfigMap")
    assert not any("password" in key for key in cm["data"])


def test_stateful_set_mounts_the_secrets_by_name() -> None:
    docs = render()
    pod = sts(docs)["spec"]["template"]["spec"]
    secret_volumes = {v["secret"]["secretName"]: v for v in pod["volumes"] if "secret" in v}
    assert set(secret_volumes) == {"pg-secrets", "pg-certs"} == {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    for name, path in (("pg-secrets", "/etc/pgkeel/secrets"), ("pg-certs", "/etc/pgkeel/certs")):
        vol = secret_volumes[name]
        assert vol["secret"]["defaultMode"] in (0o400, 0o440)
        assert mounts[vol["name"]] == {"name": vol["name"], "mountPath": path, "readOnly": True}


def test_render_k8s_has_no_secret_and_is_deterministic() -> None:
    """Re-applying `render k8s` output can never change a credential."""
    assert by_kind(render_manifests(cluster()), "Secret") == []
    assert dump_yaml(render_manifests(cluster())) == dump_yaml(render_manifests(cluster()))


def test_generated_credentials_are_random() -> None:
    a, b = generate_credentials(), generate_credentials()
    assert set(a) == {"superuser-password", "replication-password", "api-token"}
    assert all(len(v) >= 32 for v in a.values())
    assert len(set(a.values())) == 3
    assert not set(a.values()) & set(b.values())


@pytest.mark.parametrize("instances", INSTANCES)
def test_the_ca_key_is_in_no_pod(instances: int) -> None:
    """Only the CA certificate and each pod's own certificate reach the pods, never the CA key."""
    docs = render(instances)
    ca_key = CA.key_pem.decode()
    assert ca_key not in dump_yaml(docs)
    certs = one(docs, "Secret", "pg-certs")["stringData"]
    # every pod the StatefulSet may run, `kubectl scale` included (pgkeel.k8s.layout.stateful_set_pods)
    assert set(certs) == {"ca.crt"} | {f"pg-{i}.{ext}" for i in range(9) for ext in ("crt", "key")}
    assert certs["ca.crt"] == CA.cert_pem.decode()
    mounted = {v["secret"]["secretName"] for v in sts(docs)["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    for secret in by_kind(docs, "Secret"):
        if secret["metadata"]["name"] in mounted:
            assert "ca.key" not in secret["stringData"]


def test_without_tls_there_are_no_certificates() -> None:
    c = cluster(tls={"enabled": False})
    docs = [*render_secrets(c, None, credentials=PASSWORDS), *render_manifests(c)]
    assert [d["metadata"]["name"] for d in by_kind(docs, "Secret")] == ["pg-secrets"]
    pod = sts(docs)["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v] == ["pg-secrets"]
    assert "/etc/pgkeel/certs" not in {m["mountPath"] for m in container(docs)["volumeMounts"]}
    with pytest.raises(ValueError, match="CA"):
        render_secrets(cluster(), None)


def test_pdb_allows_one_pod_down() -> None:
    pdb = one(render(5), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]


def test_network_policy_with_cidrs() -> None:
    np = one(render(network={"allowedCidrs": ["10.244.0.0/16", "192.168.1.0/24"]}), "NetworkPolicy")
    peers, clients = np["spec"]["ingress"]
    assert {p["port"] for p in peers["ports"]} == {5432, 8008}
    assert peers["from"] == [{"podSelector": {"matchLabels": layout.selector_labels("pg")}}]
    assert [p["port"] for p in clients["ports"]] == [5432]
    assert clients["from"] == [{"ipBlock": {"cidr": "10.244.0.0/16"}}, {"ipBlock": {"cidr": "192.168.1.0/24"}}]


def test_network_policy_with_samenet_leaves_postgres_to_pg_hba_but_guards_the_api() -> None:
    np = one(render(), "NetworkPolicy")
    peers, clients = np["spec"]["ingress"]
    assert "from" not in clients and [p["port"] for p in clients["ports"]] == [5432]
    assert 8008 in {p["port"] for p in peers["ports"]}
    assert by_kind(render_manifests(cluster(), include_network_policy=False), "NetworkPolicy") == []


def test_no_replication_user_job() -> None:
    """The agent's bootstrap creates the replication role (SCRAM); no Job, see docs/kubernetes.md."""
    assert by_kind(render(), "Job") == []


def test_yaml_round_trips_and_keeps_config_readable() -> None:
    docs = render()
    text = dump_yaml(docs)
    assert list(yaml.safe_load_all(text)) == docs
    assert "postgresql.conf: |" in text


def test_dev_shm_is_memory_backed_and_bounded_by_a_quarter_of_the_memory_limit() -> None:
    for memory, bound in (("3Gi", "768Mi"), ("256Mi", "64Mi")):
        docs = render(3, resources={"cpu": "1", "memory": memory})
        pod = sts(docs)["spec"]["template"]["spec"]
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": bound}  # counts against the memory limit
        mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
        assert mounts["dshm"] == "/dev/shm"
