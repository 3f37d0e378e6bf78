"""Where a cluster on other machines is reached: `--api`, `--store`, `-f` resolved into one `Target`.

Pure: files are checked for existence, never read here (the token is read when a request is sent),
and every problem is a `TargetError` naming the option and the fix. Precedence: an option given on
the command line wins over what the document says; the document fills in what is not given
(every member's API from spec.members, the store from spec.store.etcd).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from pgkeel.dcs import EtcdAccess
from pgkeel.document import PostgresCluster
from pgkeel.ha.records import url_host
from pgkeel.k8s import layout
from pgkeel.node.config import etcd_access, store_url

BUNDLE_HINT = "a member's bundle (DIR/MEMBER made by `pgkeel secrets init`) or the --out DIR itself"


class TargetError(ValueError):
    """The options cannot name a reachable cluster; the message names the option and the fix."""


@dataclass(frozen=True)
class RemoteOptions:
    """What the person typed (after typer), plus the document if -f was given."""

    api: tuple[str, ...] = ()
    ca: Path | None = None
    token_file: Path | None = None
    secrets: Path | None = None
    store: str | None = None
    store_ca: Path | None = None
    store_cert: Path | None = None
    store_key: Path | None = None
    store_user: str | None = None
    store_password_file: Path | None = None
    document: PostgresCluster | None = None

    def given(self) -> bool:
        """Any remote option at all: the command leaves the local cluster (`--dir`) alone."""
        return self != RemoteOptions()


@dataclass(frozen=True)
class ApiAccess:
    """The members' APIs, tried in this order, and what a request needs to be trusted and allowed."""

    urls: tuple[str, ...]
    ca_file: Path | None  # None only for http://127.0.0.1 (the plain listener on a member itself)
    token_file: Path | None  # None: reads only


@dataclass(frozen=True)
class StoreAccess:
    url: str  # etcd://h:p,… or etcds://h:p,…, as pgkeel.dcs.open_dcs takes it
    scope: str  # the cluster's name: its keys live under /pgkeel/<scope>/
    etcd: EtcdAccess | None


@dataclass(frozen=True)
class Target:
    api: ApiAccess | None
    store: StoreAccess | None
    members: tuple[str, ...] = field(default=())  # the document's members, in its order; () without -f
    name: str | None = None  # the cluster's name when the store URL or the document says it


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def api_url(value: str) -> str:
    """https://HOST:PORT (no path); plain http only to loopback, where a member serves it."""
    match = re.fullmatch(r"(https?)://([^/:\[\]]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?/?", value.strip())
    if match is None:
        raise TargetError(f"--api {value!r}: write a member's API as https://HOST:8008 (scheme, host, port)")
    scheme, host, port = match.group(1), match.group(2), match.group(3) or "8008"
    if scheme == "http" and not _loopback(host):
        raise TargetError(f"--api {value}: a member serves its API over HTTPS beyond loopback; "
                          f"use https://{host}:{port} with --ca FILE")
    return f"{scheme}://{host}:{port}"


def _bundle_files(directory: Path) -> tuple[Path, Path | None]:
    """(CA certificate, API token) of a member's bundle, or of `secrets init --out` (ca/ + member dirs)."""
    if (directory / layout.CA_CERT_KEY).is_file():
        token = directory / layout.API_TOKEN_KEY
        return directory / layout.CA_CERT_KEY, token if token.is_file() else None
    ca = directory / "ca" / layout.CA_CERT_KEY
    tokens = sorted(directory.glob(f"*/{layout.API_TOKEN_KEY}"))
    if ca.is_file():
        return ca, tokens[0] if tokens else None
    raise TargetError(f"--secrets {directory}: no {layout.CA_CERT_KEY} in it; give {BUNDLE_HINT}")


def _existing(option: str, path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise TargetError(f"{option} {path}: no such file; give {what}")
    return path


def _api(options: RemoteOptions) -> ApiAccess | None:
    ca = _existing("--ca", options.ca, "the cluster CA certificate (ca.crt of a member's bundle)")
    token = _existing("--token-file", options.token_file, "the file holding the cluster's API token (api-token)")
    if options.secrets is not None:
        bundle_ca, bundle_token = _bundle_files(options.secrets)
        ca, token = ca or bundle_ca, token or bundle_token
    urls = [api_url(u) for value in options.api for u in value.split(",") if u.strip()]
    if not urls and options.document is not None:
        urls = [f"https://{url_host(m.host)}:{m.api_port}" for m in options.document.spec.members if m.host]
    if not urls:
        return None
    if ca is None and any(u.startswith("https://") for u in urls):
        if not options.api:  # the document's APIs are optional: the store may still be read
            return None
        raise TargetError(f"--api {urls[0]}: give --ca FILE (the cluster CA: ca.crt in any member's bundle) "
                          "or --secrets DIR to verify the members' certificates")
    return ApiAccess(tuple(dict.fromkeys(urls)), ca, token)


def _store_url(value: str) -> tuple[str, str | None]:
    """(etcd[s]://h:p,…, cluster name from the path or None)."""
    match = re.fullmatch(r"(etcds?)://([^/]+?)(?:/([a-z0-9][a-z0-9-]*))?/?", value.strip())
    if match is None:
        raise TargetError(f"--store {value!r}: write etcd://HOST:2379[,HOST:2379…]/CLUSTER "
                          "(etcds:// for TLS; CLUSTER is the document's metadata.name)")
    hosts = [h.strip() for h in match.group(2).split(",")]
    if not all(re.fullmatch(r"[^:\s]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", h) for h in hosts):
        raise TargetError(f"--store {value}: every endpoint needs HOST:PORT, e.g. {match.group(1)}://10.0.0.11:2379")
    return f"{match.group(1)}://{','.join(hosts)}", match.group(3)


def _store(options: RemoteOptions) -> StoreAccess | None:
    document = options.document
    if options.store is None:
        if document is None or document.spec.store.etcd is None:
            return None
        return StoreAccess(store_url(document), document.name, etcd_access(document))
    url, name = _store_url(options.store)
    if document is not None and name is not None and name != document.name:
        raise TargetError(f"--store {options.store}: names cluster {name!r} but -f is {document.name!r}; "
                          "give one cluster")
    name = name or (document.name if document else None)
    if name is None:
        raise TargetError(f"--store {options.store}: name the cluster at the end of the URL, "
                          f"e.g. {url}/shop (its metadata.name), or give -f FILE")
    if (options.store_user is None) != (options.store_password_file is None):
        raise TargetError("--store-user and --store-password-file: give both (etcd auth) or neither")
    if (options.store_cert is None) != (options.store_key is None):
        raise TargetError("--store-cert and --store-key: give both (a client certificate needs its key) or neither")
    for option, path in (("--store-ca", options.store_ca), ("--store-cert", options.store_cert),
                         ("--store-key", options.store_key), ("--store-password-file", options.store_password_file)):
        _existing(option, path, "an existing file")
    if url.startswith("etcd://") and (options.store_ca or options.store_cert):
        raise TargetError(f"--store {options.store}: TLS files given for a plain etcd:// URL; write etcds://")
    access = EtcdAccess(options.store_ca, options.store_cert, options.store_key, options.store_user,
                        options.store_password_file)
    return StoreAccess(url, name, access if access != EtcdAccess() else None)


def resolve(options: RemoteOptions) -> Target:
    """The target of a remote command; TargetError when the options name none or contradict each other."""
    api, store = _api(options), _store(options)
    if api is None and store is None:
        raise TargetError("no cluster to reach: give --api https://HOST:8008 (with --ca/--token-file or "
                          "--secrets DIR), --store etcds://HOST:2379/CLUSTER, or -f FILE with spec.members")
    document = options.document
    members = tuple(document.member_names()) if document is not None else ()
    return Target(api, store, members, store.scope if store else (document.name if document else None))
