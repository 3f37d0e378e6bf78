"""spec.members and spec.store: the machines of a cluster and where they agree, each error naming its field."""

from __future__ import annotations

import pytest

from pgkeel.document import MemberSpec, SpecError, parse_cluster
from pgkeel.k8s.manifests import kubernetes_problems, render_manifests

MEMBERS = [{"name": "db1", "host": "198.18.0.1"}, {"name": "db2", "host": "db2.example.net"},
           {"name": "db3", "host": "198.18.0.3", "noFailover": True}]
ETCD = {"endpoints": ["https://198.18.0.1:2379", "https://198.18.0.2:2379"],
        "tls": {"ca": "/etc/pgkeel/etcd-ca.crt"}, "auth": {"user": "pgkeel", "passwordFile": "/etc/pgkeel/etcd.pw"}}


def doc(**spec: object) -> dict:
    return {"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "pg"}, "spec": spec}


def errors_of(data: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_cluster(data)
    return info.value.errors


def test_members_name_the_machines_and_default_their_ports_and_tags() -> None:
    cluster = parse_cluster(doc(members=MEMBERS, store={"etcd": ETCD}))
    assert cluster.member_names() == ["db1", "db2", "db3"]
    db3 = cluster.member_spec("db3")
    assert (db3.host, db3.pg_port, db3.api_port, db3.no_failover, db3.failover_priority, db3.no_sync) == (
        "198.18.0.3", 5432, 8008, True, 1, False)
    assert cluster.spec.store.etcd is not None and cluster.spec.store.etcd.auth is not None
    assert cluster.spec.store.etcd.auth.password_file == "/etc/pgkeel/etcd.pw"


def test_without_members_names_are_generated_and_member_spec_gives_defaults() -> None:
    cluster = parse_cluster(doc())
    assert cluster.member_names() == ["pg-0", "pg-1", "pg-2"]
    assert cluster.member_spec("pg-1") == MemberSpec(name="pg-1")
    assert cluster.spec.store.etcd is None


def test_a_member_not_in_the_document_is_a_key_error_listing_the_members() -> None:
    with pytest.raises(KeyError, match="members are db1, db2, db3"):
        parse_cluster(doc(members=MEMBERS)).member_spec("db4")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"members": MEMBERS[:2]}, "spec.members lists 2 member(s) but spec.instances is 3: list exactly one member "
                                   "per instance, or set instances: 2"),
        ({"members": [MEMBERS[0], MEMBERS[0], MEMBERS[1]]}, "spec.members: member names must be unique; db1"),
        ({"members": [{"name": "Db_1"}, {"name": "b"}, {"name": "c"}]}, "spec.members[0].name: must be a DNS-1123"),
        ({"members": [{"name": "a", "host": "bad host"}, {"name": "b"}, {"name": "c"}]},
         "spec.members[0].host: must be an IP address or a DNS name"),
        ({"members": [{"name": "a", "failoverPriority": -1}, {"name": "b"}, {"name": "c"}]},
         "spec.members[0].failoverPriority"),
        ({"members": [{"name": "a", "host": "h", "pgPort": 5433}, {"name": "b", "host": "h", "apiPort": 5433},
                      {"name": "c"}]}, "spec.members: two members use the same host and port h:5433"),
        ({"members": [{"name": n} for n in ("a", "b", "c")], "store": {"etcd": ETCD}},
         "spec.members[0].host, spec.members[1].host, spec.members[2].host: required with spec.store.etcd"),
        ({"store": {"etcd": ETCD}}, "spec.members: required with spec.store.etcd; list each machine as {name, host}"),
        ({"store": {"etcd": {"endpoints": []}}}, "spec.store.etcd.endpoints: must list at least one etcd client URL"),
        ({"store": {"etcd": {"endpoints": ["198.18.0.1:2379"]}}}, "is not an etcd client URL such as https://"),
        ({"store": {"etcd": {"endpoints": ["https://a:2379", "http://b:2379"], "tls": {"ca": "/ca"}}}},
         "spec.store.etcd.endpoints: mixes http:// and https://"),
        ({"store": {"etcd": {"endpoints": ["https://a:2379"]}}}, "spec.store.etcd: tls: required with https://"),
        ({"store": {"etcd": {"endpoints": ["https://a:2379"], "tls": {"ca": "ca.crt"}}}},
         "spec.store.etcd.tls.ca: must be an absolute file path"),
        ({"store": {"etcd": {"endpoints": ["https://a:2379"], "tls": {"ca": "/ca", "key": "/k"}}}},
         "spec.store.etcd.tls: cert and key: give both"),
        ({"store": {"etcd": {"endpoints": ["http://a:2379"], "tls": {"ca": "/ca"}}}},
         "spec.store.etcd: endpoints: tls is set but the endpoints are http://"),
        ({"store": {"etcd": {"endpoints": ["http://a:2379"], "auth": {"user": "u"}}}},
         "spec.store.etcd.auth.passwordFile: required field is missing"),
        ({"store": {"consul": {}}}, "spec.store.consul: unknown field"),
    ],
)
def test_bad_members_and_stores_name_the_field_and_the_fix(spec: dict, expected: str) -> None:
    errors = errors_of(doc(**spec))
    assert any(expected in e for e in errors), errors


def test_a_cluster_where_nobody_may_be_promoted_or_etcd_auth_in_clear_is_allowed_with_a_warning() -> None:
    members = [{"name": n, "host": f"198.18.0.{i}", "noFailover": True} for i, n in enumerate("abc", 1)]
    members[2] = {"name": "c", "host": "198.18.0.3", "failoverPriority": 0}
    etcd = {"endpoints": ["http://198.18.0.1:2379"], "auth": {"user": "u", "passwordFile": "/pw"}}
    found = parse_cluster(doc(members=members, store={"etcd": etcd}, replication={"mode": "async"})).spec.warnings()
    assert any(w.startswith("spec.members: every member has noFailover") for w in found), found
    assert any(w.startswith("spec.store.etcd.auth: the etcd password crosses the network in clear") for w in found)


def test_kubernetes_accepts_members_named_as_its_pods_and_refuses_the_rest() -> None:
    ok = parse_cluster(doc(members=[{"name": f"pg-{i}", "noSync": i == 2} for i in range(3)]))
    assert kubernetes_problems(ok) == [] and render_manifests(ok)
    bad = parse_cluster(doc(members=MEMBERS, store={"etcd": ETCD}))
    problems = kubernetes_problems(bad)
    assert problems[0].startswith("spec.members[0].name: pods of a StatefulSet are named pg-0; got 'db1'")
    assert "spec.members[0].host: a pod's address is given by Kubernetes; remove host" in problems
    assert problems[-1].startswith("spec.store.etcd: on Kubernetes the store is a Lease")
    with pytest.raises(ValueError, match=r"spec\.members"):
        render_manifests(bad)


def test_tags_shrink_the_synchronous_set_and_k_must_fit_what_is_left() -> None:
    one = [{"name": f"pg-{i}", "noSync": i == 4} for i in range(5)]
    spec = parse_cluster(doc(instances=5, members=one)).spec
    assert (spec.sync_excluded, spec.sync_eligible, spec.sync_standbys) == (["pg-4"], 3, 2)
    assert not [w for w in spec.warnings() if "synchronous" in w]
    two = [{"name": f"pg-{i}", "noSync": i == 3, "noFailover": i == 4} for i in range(5)]
    spec = parse_cluster(doc(instances=5, members=two)).spec
    assert (spec.sync_eligible, spec.sync_standbys) == (2, 1), "one standby of slack: 2 of 2 would stop writes"
    assert any(w.startswith("spec.members: pg-3, pg-4 tagged noSync/noFailover leave 2") for w in spec.warnings())
    spec = parse_cluster(doc(instances=5, members=two, replication={"syncStandbys": 2})).spec
    assert any("any one of them down stops writes" in w for w in spec.warnings())
    errors = errors_of(doc(members=[{"name": f"pg-{i}", "noSync": i == 2} for i in range(3)],
                           replication={"syncStandbys": 2}))
    assert any("replication.syncStandbys: 2, but only 1 standby(s) may be synchronous" in e for e in errors), errors
    errors = errors_of(doc(members=[{"name": f"pg-{i}", "noSync": i > 0} for i in range(3)]))
    assert any("leaves a primary no standby for its synchronous set" in e for e in errors), errors
