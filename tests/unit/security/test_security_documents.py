"""Hostile cluster documents: hypothesis mutates examples/cluster.yaml with wrong types, huge numbers,
unicode and injection attempts (newlines, quotes, `include`, comments, backslashes) in every field,
parameter names and values, and hba rules.

For every document, loading, validating and rendering either refuses it with SpecError/ConfigError
whose every line names a field path, or renders files with exactly the lines pgkeel and the user
asked for: never another exception, never a smuggled line.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgkeel.document import PostgresCluster, SpecError, load_cluster_text, parse_cluster
from pgkeel.pgconf import ConfigError, RenderedConfig, load_catalogue, policy, render_config, tuning, validate_cluster
from pgkeel.pgconf.hba import default_rules, parse_rule

ROOT = Path(__file__).resolve().parents[3]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
CONFIG_DIR = "/etc/postgresql"
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CATALOGUE_NAMES = sorted(load_catalogue(15))

# --- hostile values -------------------------------------------------------------------------------
INJECTIONS = [
    "", " ", "\n", "\r", "\r\n", "\t", "\x00", "\x0b", "\x0c", "\x1c", "\x7f", "\x85", "\u2028", "\u2029",
    "'", '"', "''", "\\", "\\'", "#", "# comment", "=", " = ", "on\n", "128MB\n", "x'\ny = 1",
    "x\ninclude = '/etc/passwd'",
    "include = '/etc/passwd'", "include_if_exists '/etc/shadow'", "include_dir '/etc'", "'; DROP ROLE postgres; --",
    "x' # ", "a\\\nb = 2", "$(reboot)", "`id`", "%s%s%n", "${HOME}", "../../etc/passwd", "/etc/passwd",
    "\u202eevil", "\u200b", "😀", "ﬀ", "ǅ", "İ", "ß", "\ufeff", "\udcff".encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace"), "a" * 300, "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e308GB",
    "0x10", "1_000", "  8MB  ", "8 MB", "8Mi", "-1", "-0", "+5", "on", "off", "yes", "true", "1", "0", "~", "null",
    "host all all 0.0.0.0/0 trust", "local all all trust\nhost all all 0.0.0.0/0 trust",
]
HOSTILE_TEXT = st.sampled_from(INJECTIONS) | st.text(max_size=40) | st.builds(
    lambda a, b, c: a + b + c, st.text(max_size=8), st.sampled_from(INJECTIONS), st.text(max_size=8))
HUGE_NUMBERS = st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 2**31, -1, 0, 1e308, -1e308, 1e-320,
                                math.inf, -math.inf, math.nan, 0.5, -0.0])
SCALARS = st.none() | st.booleans() | st.integers() | HUGE_NUMBERS | st.floats() | HOSTILE_TEXT
HOSTILE = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    HOSTILE_TEXT | st.integers(), inner, max_size=3), max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    return out


EXTRA_PATHS = [
    ("metadata", "labels"), ("metadata", "labels", "app"), ("spec", "users", "superuser"),
    ("spec", "users", "replication"), ("spec", "storage", "storageClass"), ("spec", "postgres", "bindir"),
    ("spec", "replication", "maxLagOnFailover"), ("spec", "failover", "dcsTimeoutSeconds"),
    ("spec", "failover", "postgresRestartTimeoutSeconds"), ("spec", "network", "allowedCidrs", 0),
    ("spec", "postgres", "hba", 0), ("spec", "postgres", "parameters", "shared_buffers"), ("spec", "bogus"),
    ("bogus",), ("spec", "postgres", "parameters", "work_mem"), ("spec", "postgres", "parameters", "x.y"),
]
PATHS = [p for p in _paths(BASE) if p] + EXTRA_PATHS


def set_path(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        if isinstance(node, dict):
            if not isinstance(node.get(key), dict | list):
                node[key] = {} if not isinstance(path[path.index(key) + 1], int) else []
            node = node[key]
        elif isinstance(node, list):
            if not node:
                node.append({})
            node = node[0]
    last = path[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list):
        if node:
            node[0] = value
        else:
            node.append(value)
    return doc


# Values valid at their path, and free text where any string is accepted (labels, storageClass, bindir):
# mixed with hostile ones so that many mutated documents still render and their files get checked.
VALID_AT: dict[tuple[str, ...], list[Any]] = {
    ("spec", "instances"): [1, 3, 5, 7, 9],
    ("spec", "resources", "cpu"): ["1", "500m", "4", "64", "0.5"],
    ("spec", "resources", "memory"): ["512Mi", "8Gi", "1Ti", "300M", "64Gi"],
    ("spec", "storage", "size"): ["1Gi", "100Gi", "2Ti", "1Ei"],
    ("spec", "storage", "kind"): ["hdd", "ssd"],
    ("spec", "workload"): ["oltp", "web", "dw", "mixed"],
    ("spec", "replication", "mode"): ["async", "async", "quorum"],
    ("spec", "replication", "syncStandbys"): [1, 2],
    ("spec", "failover", "ttlSeconds"): [3, 10, 30.5, 300],
    ("spec", "failover", "loopWaitSeconds"): [0.2, 1, 0.5],
    ("spec", "postgres", "version"): [13, 14, 15, 16, 17],
    ("spec", "network", "allowedCidrs"): [["10.0.0.0/8"], ["samehost"], ["10.0.0.0/8", "fd00::/8"]],
    ("metadata", "name"): ["a", "pg-1", "x" * 50],
    ("metadata", "namespace"): ["default", "prod-db"],
    ("spec", "users", "superuser"): ["admin", "_su"],
    ("spec", "users", "replication"): ["repl", "streamer_1"],
}
FREE_TEXT_PATHS = [("metadata", "labels", "app"), ("spec", "storage", "storageClass"), ("spec", "postgres", "bindir")]


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(st.integers(0, 2))
        if choice == 0:
            doc = set_path(doc, draw(st.sampled_from(PATHS)), draw(HOSTILE))
        elif choice == 1:
            doc = set_path(doc, draw(st.sampled_from(FREE_TEXT_PATHS)), draw(HOSTILE_TEXT))
        else:
            path = draw(st.sampled_from(sorted(VALID_AT)))
            doc = set_path(doc, path, draw(st.sampled_from(VALID_AT[path])))
    return doc


def _param_value() -> st.SearchStrategy[Any]:
    plausible = st.sampled_from(["on", "off", "128MB", "1GB", "8kB", "10s", "250ms", "100", "0.5", "replica",
                                 "scram-sha-256", "md5", "minimal", "-1", "pg_catalog", "'$user', public",
                                 "%m [%p] ", "/tmp/x.log", "en_US.UTF-8"])
    return SCALARS | plausible | st.integers(-(2**40), 2**40)


PARAM_NAMES = st.sampled_from(CATALOGUE_NAMES) | st.sampled_from(
    ["pg_stat_statements.track", "auto_explain.log_min_duration", "a.b", "a.b\n", "a.b\nc = 1", "A.b", "a..b",
     "a.b c", "Shared_Buffers", "shared_buffers ", " shared_buffers", "shared_buffers\n", "include",
     "include_if_exists", "include_dir", "x = 1\ny", "#a", "a.b#c", "a.b'", "", "é.x", "a.\u212a"]
) | HOSTILE_TEXT


CATALOGUE = load_catalogue(15)
_UNITS = {"memory": ["", "kB", "MB", "GB"], "time": ["", "ms", "s", "min"]}


@st.composite
def fitting_value(draw: st.DrawFn, name: str) -> Any:
    """A value of the right type for a catalogue parameter (strings: any text, injections included)."""
    guc = CATALOGUE.get(name)
    if guc is None or guc.vartype == "string":
        return draw(HOSTILE_TEXT)
    if guc.vartype == "bool":
        return draw(st.sampled_from([True, False, "on", "off", "yes", "0"]))
    if guc.vartype == "enum":
        return draw(st.sampled_from(list(guc.enumvals or ("x",))))
    low = guc.min if guc.min is not None else -(2**31)
    high = guc.max if guc.max is not None else 2**31
    number = draw(st.integers(int(max(low, -(2**40))), int(min(high, 2**40))) if guc.vartype == "integer"
                  else st.floats(max(low, -1e12), min(high, 1e12), allow_nan=False))
    return draw(st.sampled_from([number, str(number)]))


@st.composite
def parameter_documents(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(BASE)
    params = {}
    for _ in range(draw(st.integers(0, 4))):
        name = draw(PARAM_NAMES if draw(st.integers(0, 3)) == 0 else st.sampled_from(CATALOGUE_NAMES))
        params[name] = draw(_param_value() if draw(st.integers(0, 3)) == 0 else fitting_value(name))
    doc["spec"]["postgres"]["parameters"] = params
    return doc


HBA_TOKENS = [
    "local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc", "include", "include_dir", "all",
    "replication", "sameuser", "samerole", "postgres", "replicator", "+admins", "@file", "/^re$", "a,b", "a,,b",
    "10.0.0.0/8", "10.0.0.1/8", "10.0.0.1", "255.0.0.0", "::1/128", "samenet", "samehost", "db.example.com",
    "trust", "reject", "scram-sha-256", "md5", "password", "peer", "ident", "cert", "ldap", "radius", "gss", "pam",
    "map=x", "clientcert=verify-full", "clientcert=verify-ca", "ldapserver=ldap", "radiusservers=a",
    "radiussecrets=b", "bogus=1", "novalue", "'all'", '"all"', "#", "\\", "\n", "\r", "\x00", "host\nhost",
]
HBA_WORDS = st.lists(st.sampled_from(HBA_TOKENS) | HOSTILE_TEXT, min_size=0, max_size=8).map(" ".join)
HBA_LINES = HBA_WORDS | st.sampled_from([
    "host all all 10.0.0.0/8 scram-sha-256", "local all all peer", "hostssl all all 10.0.0.0/8 cert",
    "host all all 10.0.0.0/8 scram-sha-256\nhost all all 0.0.0.0/0 trust", "host all all 0.0.0.0/0 trust",
    "host all all 10.0.0.0/8 scram-sha-256 # ok", "host\tall\tall\t10.0.0.0/8\tscram-sha-256",
    "include /etc/pg_hba.conf", "host all all 10.0.0.0/8 ldap ldapserver=x ldapprefix=\"cn=\"",
]) | HOSTILE_TEXT


_NAMES = st.lists(st.sampled_from(["all", "app", "postgres", "replicator", "a_b", "x-y", "+grp", "replication"]),
                  min_size=1, max_size=3).map(",".join)


@st.composite
def good_rules(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["local", "host", "hostnossl", "hostssl", "hostgssenc", "hostnogssenc"]))
    address = [] if kind == "local" else [draw(st.sampled_from(
        ["10.0.0.0/8", "192.168.1.0/24", "::1/128", "fd00::/8", "samenet", "samehost", "all", "db.example.com",
         ".example.com"]))]
    methods = ["reject", "scram-sha-256", "ldap ldapserver=ldap.example.com", "gss include_realm=0",
               "radius radiusservers=r radiussecrets=s", "ident map=m"]
    methods += ["peer", "trust"] if kind == "local" else []
    methods += ["cert clientcert=verify-full", "password", "scram-sha-256 clientcert=verify-ca"] if kind == "hostssl" \
        else []
    words = [kind, draw(_NAMES), draw(_NAMES), *address, draw(st.sampled_from(methods))]
    return draw(st.sampled_from([" ", "\t", "  "])).join(words)


@st.composite
def hba_documents(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(BASE)
    doc["spec"]["postgres"]["hba"] = draw(st.lists(HBA_LINES if draw(st.integers(0, 2)) == 0 else good_rules(),
                                                   max_size=5))
    if draw(st.booleans()):
        doc["spec"]["postgres"]["parameters"] = {"ssl": "on", "ssl_cert_file": "server.crt",
                                                 "ssl_key_file": "server.key"}
    return doc


# --- the properties ------------------------------------------------------------------------------------
_ROOTS = {"spec", "metadata", "apiVersion", "kind", "(document)"}


def check_errors(lines: list[str], doc: Any) -> None:
    """Non-empty, one line each, and each names a field path of the document."""
    assert lines, "an error without any line"
    roots = _ROOTS | ({str(k) for k in doc} if isinstance(doc, dict) else set())
    for line in lines:
        assert isinstance(line, str) and line.strip(), f"empty error line in {lines!r}"
        assert "\n" not in line and "\r" not in line, f"an error line that breaks: {line!r}"
        path, sep, problem = line.partition(": ")
        assert sep and problem.strip(), f"no `path: problem` in {line!r}"
        root = re.split(r"[.\[]", path, maxsplit=1)[0]
        assert root in roots or path.startswith("["), f"error does not name a field path: {line!r}"
        assert len(line) < 20_000, f"error line of {len(line)} characters"


def _unquote(rest: str) -> tuple[str, str]:
    """One postgresql.conf value token as PostgreSQL's lexer reads it, and what follows it."""
    if rest.startswith("'"):
        out, i = [], 1
        while True:
            assert i < len(rest), f"unterminated string in {rest!r}"
            c = rest[i]
            if c == "\\":
                assert rest[i + 1] == "\\", f"unexpected escape in {rest!r}"
                out.append("\\")
                i += 2
            elif c == "'" and rest[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
            elif c == "'":
                return "".join(out), rest[i + 1 :]
            else:
                out.append(c)
                i += 1
    match = re.match(r"[^\s#'=]+", rest)
    assert match, f"no value in {rest!r}"
    return match[0], rest[match.end() :]


def check_conf(cluster: PostgresCluster, rendered: RenderedConfig) -> None:
    user = dict(cluster.spec.postgres.parameters)
    own = {r.name for r in policy.required_settings(cluster, CONFIG_DIR)}
    own |= {t.name for t in tuning.tune(tuning.inputs_for(cluster))}
    lines = [line for line in rendered.postgresql_conf.split("\n") if line.strip() and not line.startswith("#")]
    settings_ = rendered.settings
    assert len(lines) == len(settings_), "postgresql.conf has lines that are not settings"
    assert len({s.name for s in settings_}) == len(settings_), "a parameter is set twice"
    for line, setting in zip(lines, settings_, strict=True):
        match = re.match(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*(\.[a-z_][a-z0-9_$]*)*) = (?P<rest>.*)$", line)
        assert match, f"not `name = value`: {line!r}"
        assert match["name"] == setting.name
        value, tail = _unquote(match["rest"])
        assert value == setting.value, f"{setting.name}: written {value!r}, meant {setting.value!r}"
        assert tail == "" or re.match(r"^\s+#", tail), f"something after the value of {setting.name}: {tail!r}"
        if setting.source == "user":
            assert setting.name in user
        else:
            assert setting.name in own, f"{setting.name} is neither pgkeel's nor the user's"
    assert set(user) <= {s.name for s in settings_}, "a user parameter went missing"
    for raw in user.values():
        if isinstance(raw, str):
            assert "\n" not in raw and "\r" not in raw  # refused otherwise


def check_hba(cluster: PostgresCluster, rendered: RenderedConfig) -> None:
    head, tail = default_rules(cluster)
    user_lines = list(cluster.spec.postgres.hba)
    lines = [line for line in rendered.pg_hba_conf.split("\n") if line.strip() and not line.startswith("#")]
    expected = [r.render() for r in head] + [parse_rule(x).render() for x in user_lines] + [r.render() for r in tail]
    assert lines == expected
    for line, given_line in zip(lines[len(head) : len(head) + len(user_lines)], user_lines, strict=True):
        assert line.split() == given_line.split(), f"user rule {given_line!r} written as {line!r}"


def check_document(doc: Any, as_text: bool = False) -> str:
    """Load, validate and render one document; return what happened. Anything but our errors propagates."""
    try:
        cluster = load_cluster_text(yaml.safe_dump(doc, allow_unicode=True)) if as_text else parse_cluster(doc)
    except SpecError as exc:
        check_errors(exc.errors, doc)
        return "spec error"
    problems = validate_cluster(cluster)
    try:
        rendered = render_config(cluster, config_dir=CONFIG_DIR)
    except ConfigError as exc:
        check_errors(exc.errors, doc)
        assert problems, f"render refused what validate accepted: {exc.errors}"
        return "config error"
    assert not problems, f"validate refused what render accepted: {problems}"
    check_conf(cluster, rendered)
    check_hba(cluster, rendered)
    return "rendered"


# --- the fuzzers -------------------------------------------------------------------------------------------
OUTCOMES: dict[str, dict[str, int]] = {}


def _count(test: str, outcome: str) -> None:
    OUTCOMES.setdefault(test, {}).setdefault(outcome, 0)
    OUTCOMES[test][outcome] += 1


@FUZZ
@given(doc=mutated_documents(), as_text=st.booleans())
def test_mutated_documents_render_or_fail_clearly(doc: Any, as_text: bool) -> None:
    try:
        yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        as_text = False
    _count("mutated", check_document(doc, as_text))


@FUZZ
@given(doc=parameter_documents())
def test_hostile_parameters_render_or_fail_clearly(doc: Any) -> None:
    _count("parameters", check_document(doc))


@FUZZ
@given(doc=hba_documents())
def test_hostile_hba_rules_render_or_fail_clearly(doc: Any) -> None:
    _count("hba", check_document(doc))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300) | st.sampled_from([
    "", "---", "[]", "null", "42", "'x'", "!!python/object/apply:os.system ['id']", "a: !!binary AAAA", "{",
    "apiVersion: pgkeel.dev/v1alpha1\nkind: PostgresCluster\nmetadata: {name: x}\nspec: {instances: !!float nan}",
    "a: &a [1]\nb: [*a, *a]", "\t- x", "\x00", "\ufeffapiVersion: x", "% YAML 1.2\n---\na: 1",
]))
def test_any_yaml_text_loads_or_fails_clearly(text: str) -> None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    try:
        cluster = load_cluster_text(text)
    except SpecError as exc:
        for line in exc.errors:
            assert line.startswith("(document): not valid YAML") or "\n" not in line
        check_errors([line.split("\n", 1)[0] for line in exc.errors], data)
        return
    render_config(cluster)  # pragma: no cover - random text is never a whole valid document


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    """A 1 KiB document whose aliases expand to 9^9 items: the error quotes a short repr, not gigabytes."""
    lines, prev = ["x:", "  a: &a [x, x, x, x, x, x, x, x, x]"], "a"
    for name in "bcdefghi":
        lines.append(f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    text = "\n".join(["apiVersion: pgkeel.dev/v1alpha1", "kind: PostgresCluster", "metadata: {name: x}", *lines,
                      "spec:", f"  instances: *{prev}", f"  workload: *{prev}",
                      f"  postgres: {{hba: *{prev}, parameters: {{a: *{prev}}}}}"])
    try:
        load_cluster_text(text)
    except SpecError as exc:
        check_errors(exc.errors, yaml.safe_load(text))
        assert len(str(exc)) < 20_000
    else:  # pragma: no cover
        raise AssertionError("the bomb was accepted")


# --- the specific injections, named -------------------------------------------------------------------------
def _doc(**spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for key, value in spec.items():
        doc["spec"][key] = value
    return doc


NAMED_INJECTIONS = {
    "newline in a string parameter": _doc(postgres={"parameters": {"application_name": "x'\ninclude = '/etc/passwd"}}),
    "newline in an extension parameter": _doc(postgres={"parameters": {"x.y": "1\ninclude '/etc/passwd'"}}),
    "newline after an extension name": _doc(postgres={"parameters": {"x.y\n": "1"}}),
    "include as a parameter": _doc(postgres={"parameters": {"include": "/etc/passwd"}}),
    "two hba rules in one item": _doc(postgres={"hba": ["host all all 10.0.0.0/8 scram-sha-256\nhost all all "
                                                         "0.0.0.0/0 trust"]}),
    "hba include": _doc(postgres={"hba": ["include /etc/passwd"]}),
    "hba trust over TCP": _doc(postgres={"hba": ["host all all 0.0.0.0/0 trust"]}),
    "hba md5": _doc(postgres={"hba": ["host all all 10.0.0.0/8 md5"]}),
    "newline after a memory quantity": _doc(resources={"cpu": "2", "memory": "4Gi\n"}),
    "newline after a cpu quantity": _doc(resources={"cpu": "2\n", "memory": "4Gi"}),
    "newline after the storage size": _doc(storage={"size": "20Gi\n", "kind": "ssd"}),
    "newline after the superuser": _doc(users={"superuser": "postgres\n"}),
    "newline after a CIDR": _doc(network={"allowedCidrs": ["10.0.0.0/8\n"]}),
    "huge work_mem": _doc(postgres={"parameters": {"work_mem": "1e308GB"}}),
    "password_encryption md5": _doc(postgres={"parameters": {"password_encryption": "md5"}}),
}


def test_named_injections_are_refused_with_a_field_path() -> None:
    for what, doc in NAMED_INJECTIONS.items():
        assert check_document(doc) in ("spec error", "config error"), what
    metadata = copy.deepcopy(BASE)
    metadata["metadata"]["name"] = "pg\n"
    assert check_document(metadata) == "spec error"


def test_quotes_and_backslashes_in_values_are_written_as_one_string() -> None:
    doc = _doc(postgres={"parameters": {"search_path": "a', b = 'c\\", "pg_stat_statements.track": "it's # all"}})
    assert check_document(doc) == "rendered"
    conf = render_config(parse_cluster(doc)).postgresql_conf
    assert "search_path = 'a'', b = ''c\\\\'" in conf
    assert "pg_stat_statements.track = 'it''s # all'" in conf
