"""Remote control's options: what `--api`, `--secrets`, `--store` and `-f` resolve to, and the one line each
mistake gets (naming the option and the fix). Files are real (a bundle made by `secrets init`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pgkeel.cli import app
from pgkeel.document import PostgresCluster, parse_cluster
from pgkeel.node.bundle import init_secrets
from pgkeel.remote.target import RemoteOptions, TargetError, resolve

runner = CliRunner()
DOC = {
    "apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "shop"},
    "spec": {
        "members": [{"name": "db1", "host": "198.18.0.11"}, {"name": "db2", "host": "198.18.0.12"},
                    {"name": "db3", "host": "198.18.0.13", "apiPort": 9008}],
        "store": {"etcd": {"endpoints": ["https://198.18.0.11:2379", "https://198.18.0.12:2379"],
                           "tls": {"ca": "/etc/pgkeel/etcd-ca.crt"},
                           "auth": {"user": "pgkeel", "passwordFile": "/etc/pgkeel/shop/etcd-password"}}},
    },
}


@pytest.fixture
def cluster() -> PostgresCluster:
    return parse_cluster(DOC)


@pytest.fixture
def secrets(cluster: PostgresCluster, tmp_path: Path) -> Path:
    init_secrets(cluster, tmp_path / "shop-secrets")
    return tmp_path / "shop-secrets"


def refused(options: RemoteOptions) -> str:
    with pytest.raises(TargetError) as caught:
        resolve(options)
    return str(caught.value)


def test_api_urls_are_tried_in_the_given_order_with_the_bundles_ca_and_token(secrets: Path) -> None:
    target = resolve(RemoteOptions(api=("https://198.18.0.12:8008,https://198.18.0.11", "https://198.18.0.12:8008"),
                                   secrets=secrets / "db2"))
    assert target.api is not None and target.store is None
    assert target.api.urls == ("https://198.18.0.12:8008", "https://198.18.0.11:8008")  # default port, no repeats
    assert target.api.ca_file == secrets / "db2" / "ca.crt"
    assert target.api.token_file == secrets / "db2" / "api-token"


def test_the_secrets_init_out_directory_gives_the_ca_and_a_members_token(secrets: Path) -> None:
    target = resolve(RemoteOptions(api=("https://198.18.0.11:8008",), secrets=secrets))
    assert target.api is not None
    assert target.api.ca_file == secrets / "ca" / "ca.crt"
    assert target.api.token_file is not None and target.api.token_file.name == "api-token"


def test_explicit_ca_and_token_file_win_over_the_bundle(secrets: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("x\n")
    target = resolve(RemoteOptions(api=("https://h:8008",), secrets=secrets / "db1", token_file=token))
    assert target.api is not None and target.api.token_file == token


def test_the_document_gives_every_members_api_and_the_store(cluster: PostgresCluster, secrets: Path) -> None:
    target = resolve(RemoteOptions(document=cluster, secrets=secrets / "db1"))
    assert target.api is not None and target.api.urls == (
        "https://198.18.0.11:8008", "https://198.18.0.12:8008", "https://198.18.0.13:9008")
    assert target.store is not None and target.store.url == "etcds://198.18.0.11:2379,198.18.0.12:2379"
    assert target.store.scope == "shop" and target.store.etcd is not None
    assert target.store.etcd.user == "pgkeel"
    assert target.members == ("db1", "db2", "db3") and target.name == "shop"


def test_the_document_without_a_ca_reads_through_its_store_alone(cluster: PostgresCluster) -> None:
    target = resolve(RemoteOptions(document=cluster))
    assert target.api is None and target.store is not None


def test_a_store_url_names_the_cluster_in_its_path(tmp_path: Path) -> None:
    ca, password = tmp_path / "ca.crt", tmp_path / "pw"
    ca.write_text("x")
    password.write_text("secret\n")
    target = resolve(RemoteOptions(store="etcds://10.0.0.11:2379, 10.0.0.12:2379/shop", store_ca=ca,
                                   store_user="pgkeel", store_password_file=password))
    assert target.store is not None and target.api is None
    assert target.store.url == "etcds://10.0.0.11:2379,10.0.0.12:2379" and target.store.scope == "shop"
    assert target.store.etcd is not None and target.store.etcd.ca_file == ca
    assert resolve(RemoteOptions(store="etcd://10.0.0.11:2379/shop")).store.etcd is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("options", "says"), [
    (RemoteOptions(api=("http://10.0.0.11:8008",)), "--api http://10.0.0.11:8008: a member serves its API over "
     "HTTPS beyond loopback; use https://10.0.0.11:8008 with --ca FILE"),
    (RemoteOptions(api=("https://10.0.0.11:8008",)), "--api https://10.0.0.11:8008: give --ca FILE"),
    (RemoteOptions(api=("10.0.0.11:8008",)), "--api '10.0.0.11:8008': write a member's API as https://HOST:8008"),
    (RemoteOptions(api=("https://h/status",)), "write a member's API as https://HOST:8008"),
    (RemoteOptions(api=("https://h:8008",), ca=Path("/nonexistent/ca.crt")), "--ca /nonexistent/ca.crt: no such file"),
    (RemoteOptions(api=("https://h:8008",), secrets=Path("/nonexistent")), "--secrets /nonexistent: no ca.crt in it"),
    (RemoteOptions(store="etcds://10.0.0.11:2379"), "--store etcds://10.0.0.11:2379: name the cluster at the end "
     "of the URL, e.g. etcds://10.0.0.11:2379/shop"),
    (RemoteOptions(store="https://10.0.0.11:2379/shop"), "--store 'https://10.0.0.11:2379/shop': write "
     "etcd://HOST:2379"),
    (RemoteOptions(store="etcd://10.0.0.11/shop"), "every endpoint needs HOST:PORT"),
    (RemoteOptions(store="etcds://h:2379/shop", store_user="pgkeel"), "--store-user and --store-password-file: "
     "give both"),
    (RemoteOptions(store="etcd://h:2379/shop", store_ca=Path("/etc/hostname")), "TLS files given for a plain "
     "etcd:// URL; write etcds://"),
    (RemoteOptions(), "no cluster to reach: give --api"),
])
def test_each_mistake_is_one_message_naming_the_option_and_the_fix(options: RemoteOptions, says: str) -> None:
    assert says in refused(options)


def test_a_store_url_naming_another_cluster_than_the_document_is_refused(cluster: PostgresCluster) -> None:
    assert "names cluster 'web' but -f is 'shop'" in refused(RemoteOptions(store="etcd://h:2379/web", document=cluster))


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def test_a_dead_api_is_one_line_naming_every_url_tried() -> None:
    code, said = run("status", "--api", "http://127.0.0.1:9,http://127.0.0.1:7")
    assert code == 1
    assert said.startswith("error: no member API answered /cluster: http://127.0.0.1:9 (connection refused); "
                           "http://127.0.0.1:7 (connection refused)"), said


def test_a_dead_api_then_a_dead_store_names_both() -> None:
    code, said = run("history", "--api", "http://127.0.0.1:9", "--store", "etcd://127.0.0.1:7/shop")
    assert code == 1 and "http://127.0.0.1:9 (connection refused)" in said
    assert "cannot read the store etcd://127.0.0.1:7" in said, said


def test_switchover_without_a_token_says_where_to_get_it_before_asking_anyone() -> None:
    code, said = run("switchover", "--api", "http://127.0.0.1:9", "--to", "db2")
    assert code == 1
    assert said == ("error: switchover needs the cluster's API token: give --token-file FILE (api-token in any "
                    "member's bundle) or --secrets DIR"), said


def test_switchover_with_only_a_store_is_refused_naming_the_api_options(tmp_path: Path) -> None:
    document = tmp_path / "cluster.yaml"
    document.write_text(yaml.safe_dump(DOC))
    code, said = run("switchover", "-f", str(document), "--to", "db2")  # no --ca: the document gives the store only
    assert code == 1
    assert said.startswith("error: switchover goes through a member's API (it checks the request and the token): "
                           "give --api https://HOST:8008"), said
    code, said = run("switchover", "--store", "etcd://127.0.0.1:7/shop", "--to", "db2")
    assert code == 2 and "--store" in said  # not an option of switchover: requests never go to the store
