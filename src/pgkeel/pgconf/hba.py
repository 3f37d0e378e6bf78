"""pg_hba.conf from a rule model: secure defaults, validated user rules, identical on every node.

First matching rule wins, so the order is: the superuser over the local socket, replication from the
cluster network, everything else with scram-sha-256 from the cluster network, the user's rules, and
explicit rejects at the end.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from pgkeel.document import PostgresCluster

CONNECTION_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
METHODS = (
    "trust", "reject", "scram-sha-256", "md5", "password", "gss", "ident", "peer", "ldap", "radius", "cert", "pam",
)
_DB_KEYWORDS = ("all", "sameuser", "samerole", "samegroup", "replication")
_ADDRESS_KEYWORDS = ("all", "samehost", "samenet")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]*$")
_HOSTNAME = re.compile(r"^\.?([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_OPTION = re.compile(r"^(?P<key>[a-z_]+)=(?P<value>\S+)$")
_OPTIONS = frozenset({
    "map", "clientcert", "clientname", "include_realm", "krb_realm", "compat_realm", "upn_username", "pamservice",
    "pam_use_hostname", "ldapserver", "ldapport", "ldapscheme", "ldaptls", "ldapprefix", "ldapsuffix", "ldapbasedn",
    "ldapbinddn", "ldapbindpasswd", "ldapsearchattribute", "ldapsearchfilter", "ldapurl", "radiusservers",
    "radiussecrets", "radiusidentifiers", "radiusports",
})
_REFUSED_OVER_TCP = {
    "trust": "trust over TCP lets anyone who reaches the port connect without a password; use scram-sha-256",
    "md5": "md5 is refused: passwords are stored as scram-sha-256 and md5 is weaker; use scram-sha-256",
}


class HbaError(ValueError):
    """A rule that pgkeel will not write; the message says what to write instead."""


@dataclass(frozen=True)
class HbaRule:
    type: str
    databases: tuple[str, ...]
    users: tuple[str, ...]
    method: str
    address: str | None = None
    mask: str | None = None
    options: tuple[str, ...] = field(default_factory=tuple)
    comment: str | None = None

    def render(self) -> str:
        address = " ".join(x for x in (self.address, self.mask) if x) if self.type != "local" else ""
        cols = [f"{self.type:<8}", f"{','.join(self.databases):<12}", f"{','.join(self.users):<16}",
                f"{address:<24}", self.method, *self.options]
        return " ".join(cols).rstrip()


def _names(token: str, what: str, keywords: tuple[str, ...]) -> tuple[str, ...]:
    items = token.split(",")
    for item in items:
        if not item:
            raise HbaError(f"{what} list {token!r} has an empty item; separate names with single commas")
        if item.startswith("@"):
            raise HbaError(f"{what} {item!r}: @file inclusion is not allowed; list the names in the rule")
        if item.startswith("/"):
            raise HbaError(f"{what} {item!r}: regular expressions are not supported; list the names")
        name = item[1:] if what == "user" and item.startswith("+") else item
        if item in keywords or _NAME.match(name):
            continue
        raise HbaError(f"{what} {item!r} is not a plain name or one of {', '.join(keywords)}")
    return tuple(items)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address(token: str) -> str:
    if token in _ADDRESS_KEYWORDS:
        return token
    if "/" in token:
        try:
            net = ipaddress.ip_network(token, strict=False)
        except ValueError:
            raise HbaError(f"address {token!r} is not a CIDR such as 10.0.0.0/8") from None
        try:
            ipaddress.ip_network(token, strict=True)
        except ValueError:
            raise HbaError(f"address {token!r} has host bits set; write {net.with_prefixlen}") from None
        return token
    if _is_ip(token):
        bits = 32 if ":" not in token else 128
        raise HbaError(f"address {token!r} needs a prefix length, e.g. {token}/{bits}")
    if _HOSTNAME.match(token) and any(c.isalpha() for c in token):
        return token
    raise HbaError(f"address {token!r} is not a CIDR, a host name, all, samehost or samenet")


def parse_rule(line: str) -> HbaRule:
    """Parse one user rule; refuse anything that could smuggle lines or weaken authentication."""
    if re.search(r"[\x00-\x1f\x7f]", line.replace("\t", " ")):
        raise HbaError("contains a line break or control character; give exactly one rule per list item")
    if '"' in line or "'" in line:
        raise HbaError("quotes are not allowed (they can hide spaces and keywords); use plain names")
    if "#" in line:
        raise HbaError("comments are not allowed in a rule; remove the # and what follows")
    if "\\" in line:
        raise HbaError("backslashes are not allowed (line continuation); give the whole rule on one line")
    tokens = line.split()
    if not tokens:
        raise HbaError("empty rule; remove it")
    kind = tokens[0]
    if kind.startswith("include"):
        raise HbaError(f"{kind} directives are not allowed; give the rules themselves")
    if kind not in CONNECTION_TYPES:
        raise HbaError(f"connection type {kind!r} is not one of {', '.join(CONNECTION_TYPES)}")
    local = kind == "local"
    need = 4 if local else 5
    if len(tokens) < need:
        form = "local DATABASE USER METHOD" if local else f"{kind} DATABASE USER ADDRESS METHOD"
        raise HbaError(f"too few fields: expected `{form} [OPTIONS]`")
    databases = _names(tokens[1], "database", _DB_KEYWORDS)
    users = _names(tokens[2], "user", ("all",))
    address = mask = None
    rest = tokens[3:]
    if not local:
        if len(rest) > 1 and _is_ip(rest[0]) and _is_ip(rest[1]):
            raise HbaError(f"address {rest[0]!r} with a separate netmask: use CIDR notation instead")
        address = _address(rest[0])
        rest = rest[1:]
        if rest and _is_ip(rest[0]):
            raise HbaError(f"address {tokens[3]!r} with a separate netmask: use CIDR notation instead")
    if not rest:
        raise HbaError("the authentication method is missing (e.g. scram-sha-256)")
    method, options = rest[0], tuple(rest[1:])
    _check_method(kind, method, options)
    return HbaRule(kind, databases, users, method, address, mask, options)


def _check_method(kind: str, method: str, options: tuple[str, ...]) -> None:
    if method not in METHODS:
        hint = " (local rules take no address)" if kind == "local" and ("/" in method or _is_ip(method)) else ""
        raise HbaError(f"unknown authentication method {method!r}{hint}; use one of {', '.join(METHODS)}")
    tcp = kind != "local"
    if tcp and method in _REFUSED_OVER_TCP:
        raise HbaError(_REFUSED_OVER_TCP[method])
    if tcp and method == "password":
        raise HbaError(
            "password sends the password itself to the server (in clear text, or inside TLS on hostssl), where "
            "scram-sha-256 proves it without sending it and works with the same stored passwords; use scram-sha-256"
        )
    if method == "peer" and tcp:
        raise HbaError("peer works only on local (Unix socket) rules; use scram-sha-256 over TCP")
    if method == "cert" and kind != "hostssl":
        raise HbaError("cert needs a hostssl rule")
    keys = set()
    for option in options:
        match = _OPTION.match(option)
        if not match:
            raise HbaError(f"option {option!r} must be name=value")
        key = match["key"]
        if key not in _OPTIONS:
            raise HbaError(f"unknown option {key!r}; see the pg_hba.conf documentation for {method}")
        if key == "clientcert":
            if kind != "hostssl":
                raise HbaError("clientcert needs a hostssl rule")
            if match["value"] not in ("verify-ca", "verify-full"):
                raise HbaError(f"clientcert must be verify-ca or verify-full; got {match['value']!r}")
        keys.add(key)
    if method == "ldap" and not keys & {"ldapserver", "ldapurl"}:
        raise HbaError("ldap needs ldapserver=… or ldapurl=…")
    if method == "radius" and not {"radiusservers", "radiussecrets"} <= keys:
        raise HbaError("radius needs radiusservers=… and radiussecrets=…")


def default_rules(cluster: PostgresCluster) -> tuple[list[HbaRule], list[HbaRule]]:
    """pgkeel's rules before the user's, and the final rejects after them."""
    users = cluster.spec.users
    cidrs = cluster.spec.network.allowed_cidrs
    tcp = "hostssl" if cluster.spec.tls.enabled else "host"  # with TLS on, plain TCP meets the final reject
    head = [HbaRule("local", ("all",), (users.superuser,), "peer",
                    comment="the superuser, as the same OS user, over the local socket only")]
    head += [HbaRule(tcp, ("replication",), (users.replication,), "scram-sha-256", cidr,
                     comment="streaming replication and pg_basebackup from the cluster network") for cidr in cidrs]
    head += [HbaRule(tcp, ("all",), ("all",), "scram-sha-256", cidr,
                     comment="every role (pg_rewind included) from the cluster network, with a password")
             for cidr in cidrs]
    tail = [
        HbaRule("local", ("all",), ("all",), "reject", comment="nothing else over the local socket"),
        HbaRule("host", ("all",), ("all",), "reject", "0.0.0.0/0", comment="nothing else over TCP"),
        HbaRule("host", ("all",), ("all",), "reject", "::/0"),
    ]
    return head, tail


def validate_rules(lines: list[str], ssl: bool = False) -> tuple[list[HbaRule], list[str]]:
    """Parsed user rules and `spec.postgres.hba[i]: problem` lines.

    hostssl rules need ssl = on: without it PostgreSQL reports them as errors that can never match.
    """
    rules, errors = [], []
    for i, line in enumerate(lines):
        try:
            rule = parse_rule(line)
        except HbaError as exc:
            errors.append(f"spec.postgres.hba[{i}]: {exc}")
            continue
        if rule.type == "hostssl" and not ssl:
            errors.append(f"spec.postgres.hba[{i}]: hostssl rules never match while SSL is off; set "
                          "spec.tls.enabled: true (the default) or use host")
            continue
        if rule.type == "hostnossl" and ssl and rule.method != "reject":
            errors.append(f"spec.postgres.hba[{i}]: hostnossl admits connections without TLS while TLS is on for "
                          "every client and replica; use hostssl, or set spec.tls.enabled: false to allow plain TCP")
            continue
        rules.append(rule)
    return rules, errors


def rule_warnings(lines: list[str], ssl: bool) -> list[str]:
    """Rules that are allowed but weaker than they look: with TLS on, `host` also admits plain TCP."""
    found = []
    for i, line in enumerate(lines):
        try:
            rule = parse_rule(line)
        except HbaError:
            continue  # an error, reported by validate_rules
        if ssl and rule.type in ("host", "hostnogssenc") and rule.method != "reject":
            found.append(f"spec.postgres.hba[{i}]: {rule.type} also admits connections without TLS (pgkeel's own "
                         "rules are hostssl); write hostssl to require TLS for it")
    return found


def render_hba(cluster: PostgresCluster, user_rules: list[HbaRule]) -> str:
    head, tail = default_rules(cluster)
    lines = [
        "# pg_hba.conf generated by pgkeel from the PostgresCluster document "
        f"{cluster.metadata.namespace}/{cluster.metadata.name}.",
        "# Identical on every node. Do not edit: change spec.postgres.hba or spec.network.allowedCidrs.",
        "# First matching rule wins.",
        "",
        "# TYPE  DATABASE     USER             ADDRESS                  METHOD",
    ]
    last_comment = None
    for rule in head:
        if rule.comment and rule.comment != last_comment:
            lines += ["", f"# {rule.comment}"]
            last_comment = rule.comment
        lines.append(rule.render())
    if user_rules:
        lines += ["", "# spec.postgres.hba"]
        lines += [rule.render() for rule in user_rules]
    lines += ["", "# everything else is refused"]
    lines += [rule.render() for rule in tail]
    return "\n".join(lines) + "\n"
