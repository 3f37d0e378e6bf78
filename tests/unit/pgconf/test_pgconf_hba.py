import pytest
from pgconf_docs import cluster

from pgkeel.pgconf import render_config, validate_cluster
from pgkeel.pgconf.hba import HbaError, parse_rule


def rules_of(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line and not line.startswith("#")]


def test_without_tls_tcp_rules_are_plain_host():
    hba = render_config(cluster(tls=False)).pg_hba_conf
    assert ["host", "replication", "replicator", "samenet", "scram-sha-256"] in rules_of(hba)
    assert "hostssl" not in hba


def test_default_rules_are_secure_and_ordered():
    hba = render_config(cluster()).pg_hba_conf
    assert rules_of(hba) == [
        ["local", "all", "postgres", "peer"],
        ["hostssl", "replication", "replicator", "samenet", "scram-sha-256"],
        ["hostssl", "all", "all", "samenet", "scram-sha-256"],
        ["local", "all", "all", "reject"],
        ["host", "all", "all", "0.0.0.0/0", "reject"],
        ["host", "all", "all", "::/0", "reject"],
    ]


def test_cidr_list_and_user_rules_go_before_the_rejects():
    hba = render_config(cluster(cidrs=["10.244.0.0/16", "198.18.0.0/24"],
                                hba=["hostssl all app 192.168.0.0/16 scram-sha-256"])).pg_hba_conf
    rules = rules_of(hba)
    assert ["hostssl", "replication", "replicator", "10.244.0.0/16", "scram-sha-256"] in rules
    assert ["hostssl", "replication", "replicator", "198.18.0.0/24", "scram-sha-256"] in rules
    assert "samenet" not in hba
    user = rules.index(["hostssl", "all", "app", "192.168.0.0/16", "scram-sha-256"])
    assert user < rules.index(["local", "all", "all", "reject"])


def test_identical_on_every_node():
    doc = cluster()
    assert render_config(doc).pg_hba_conf == render_config(doc).pg_hba_conf


@pytest.mark.parametrize(
    "line",
    ["host all all 10.0.0.0/8 scram-sha-256", "local sameuser all peer", "hostssl db1,db2 +admins,bob fe80::/10 cert",
     "host replication replicator samehost scram-sha-256", "host all all .example.com scram-sha-256",
     "hostssl all all 10.0.0.0/8 scram-sha-256 clientcert=verify-full", "local all all trust",
     "host all all 10.0.0.0/8 ldap ldapserver=ldap.example.com ldapprefix=cn="],
)
def test_good_rules_parse(line):
    assert parse_rule(line).render().split() == line.split()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("host all all 0.0.0.0/0 trust", "trust over TCP lets anyone"),
        ("hostssl all all 10.0.0.0/8 md5", "md5 is refused"),
        ("host all all 10.0.0.0/8 password", "clear text"),
        ("host all all 10.0.0.1 scram-sha-256", "needs a prefix length, e.g. 10.0.0.1/32"),
        ("host all all 10.0.0.1/8 scram-sha-256", "has host bits set; write 10.0.0.0/8"),
        ("host all all 10.0.0.0 255.0.0.0 scram-sha-256", "use CIDR notation"),
        ("host all all 999.0.0.0/8 scram-sha-256", "not a CIDR"),
        ("host all all 10.0.0.0/8 scram-sha-256\nhost all all 0.0.0.0/0 trust", "line break"),
        ('host all "all" 10.0.0.0/8 scram-sha-256', "quotes are not allowed"),
        ("host all all 10.0.0.0/8 scram-sha-256 # hi", "comments are not allowed"),
        ("host all all 10.0.0.0/8 scram-sha-256 \\", "backslashes"),
        ("include /etc/passwd", "include directives are not allowed"),
        ("hots all all 10.0.0.0/8 scram-sha-256", "connection type 'hots' is not one of"),
        ("host all all 10.0.0.0/8", "too few fields"),
        ("host all all 10.0.0.0/8 magic", "unknown authentication method 'magic'"),
        ("local all all 127.0.0.1/32 trust", "local rules take no address"),
        ("host @admins all 10.0.0.0/8 scram-sha-256", "@file inclusion is not allowed"),
        ("host a,,b all 10.0.0.0/8 scram-sha-256", "empty item"),
        ("host all all 10.0.0.0/8 peer", "peer works only on local"),
        ("host all all 10.0.0.0/8 cert", "cert needs a hostssl rule"),
        ("host all all 10.0.0.0/8 scram-sha-256 clientcert=verify-ca", "clientcert needs a hostssl rule"),
        ("host all all 10.0.0.0/8 scram-sha-256 colour=blue", "unknown option 'colour'"),
        ("host all all 10.0.0.0/8 scram-sha-256 map", "must be name=value"),
        ("host all all 10.0.0.0/8 ldap", "ldap needs ldapserver"),
        ("", "empty rule"),
    ],
)
def test_bad_rules_are_refused(line, message):
    with pytest.raises(HbaError) as err:
        parse_rule(line)
    assert message in str(err.value)


def test_errors_carry_the_field_path():
    found = validate_cluster(cluster(hba=["host all all 10.0.0.0/8 scram-sha-256", "host all all 0.0.0.0/0 trust"]))
    assert found == ["spec.postgres.hba[1]: trust over TCP lets anyone who reaches the port connect without a "
                     "password; use scram-sha-256"]


def test_hostssl_needs_ssl_on():
    found = validate_cluster(cluster(tls=False, hba=["hostssl all all 10.0.0.0/8 scram-sha-256"]))
    assert found == ["spec.postgres.hba[0]: hostssl rules never match while SSL is off; set "
                     "spec.tls.enabled: true (the default) or use host"]


def test_users_come_from_the_document():
    doc = cluster().model_copy(deep=True)
    users = doc.spec.users.model_copy(update={"superuser": "admin", "replication": "streamer"})
    doc = doc.model_copy(update={"spec": doc.spec.model_copy(update={"users": users})})
    rules = rules_of(render_config(doc).pg_hba_conf)
    assert rules[0] == ["local", "all", "admin", "peer"]
    assert rules[1][:3] == ["hostssl", "replication", "streamer"]
