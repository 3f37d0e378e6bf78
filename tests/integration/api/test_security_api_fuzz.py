"""The node API under garbage: raw-socket and httpx fuzzing against its OpenAPI description.

Every answer is well-formed HTTP/1.x with a documented status, the server keeps answering,
and `request_switchover` is never reached without the cluster's token.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import httpx
import pytest
from api_fakes import MEMBERS, TOKEN, Running
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgkeel.api.openapi import OPENAPI, TRANSPORT_STATUSES, documented_statuses
from pgkeel.api.server import MAX_BODY, _Handler

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EVERY_STATUS = frozenset(
    int(code) for item in OPENAPI["paths"].values() for op in item.values() for code in op["responses"]
) | TRANSPORT_STATUSES | {404}
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) [^\r\n]*\r\n")


# --- raw HTTP ---------------------------------------------------------------------------------
def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data`, half-close, read the answer to EOF. A hang is a failure, not a wait."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close (or reset) before reading everything we send
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError(f"no answer within {timeout}s to {data[:200]!r}") from None
            if not chunk:
                break
            chunks.append(chunk)
            assert time.monotonic() < deadline, f"answer still streaming after {timeout}s"
        return b"".join(chunks)


def parse_response(raw: bytes, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a well-formed HTTP/1.x response; assert on anything else."""
    match = _STATUS_LINE.match(raw)
    assert match, f"not an HTTP/1.x status line: {raw[:200]!r}"
    head_part, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of headers: {raw[:300]!r}"
    headers = {}
    for line in head_part.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        assert colon, f"malformed header line {line!r}"
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    if "content-length" in headers and not head:
        assert int(headers["content-length"]) == len(body), "Content-Length does not match the body"
    return int(match[1]), headers, body


def liveness_ok(running: Running) -> None:
    response = httpx.get(running.url + "/liveness", timeout=2.0)
    assert response.status_code == 200 and response.json()["ok"] is True


# --- strategies ---------------------------------------------------------------------------------
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_token_char = st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.characters(
    min_codepoint=0xA0, blacklist_categories=("Cs",))
KNOWN_PATHS = [*OPENAPI["paths"], "/", "//switchover", "///failover", "/switchover/", "/switchover?to=n-1",
               "/failover?force=true", "/SWITCHOVER", "/%73witchover", "/../switchover", "*",
               "http://127.0.0.1/switchover", "/status?" + "x" * 3000]
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
                           "post", "Post", "PROPFIND"]) | st.text(_token_char, min_size=1, max_size=10)
PATHS = st.sampled_from(KNOWN_PATHS) | st.text(_token_char, max_size=120).map(lambda s: "/" + s)
VERSIONS = st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/0.9", "HTTP/1", "HTTP/1.1.1", "HTTP/a.b",
                            "http/1.1", "HTTP/01.01", "", "FOO"])
VALID_AUTH = [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN} "]
INVALID_AUTH = [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
                f"Bearer {TOKEN.upper()}", TOKEN, f"Basic {TOKEN}", f"Token {TOKEN}", f"Bearer\t{TOKEN}",
                f"Bearer {TOKEN}\x00", f"Bearer {TOKEN[::-1]}", "Bearer é", "Bearer " + "A" * 5000]
# The ones httpx will send (it refuses header values with surrounding blanks or control characters).
HTTPX_INVALID_AUTH = [a for a in INVALID_AUTH if a is None or (a == a.strip() and a.isascii() and a.isprintable())]
CONTENT_LENGTHS = st.sampled_from([None, "0", "-1", "-99999", str(MAX_BODY), str(MAX_BODY + 1), "1e3", "abc",
                                   "", " 12 ", "0x10", "99999999999999999999999999", "1_0", "+5"]) | st.integers(
    -(2**70), 2**70).map(str)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=600),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {}, optional={"to": st.sampled_from(MEMBERS) | JSON_VALUES, "force": st.booleans() | JSON_VALUES}
    ).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"{", b"null", b"[]", b'{"to": "n-1"', b"\xff\xfe{}", b'{"to":"n-1"}' * 300,
                     b'{"to": "n-1", "to": 5}', b"{}" + b" " * 5000]),
)
EXTRA_HEADERS = st.lists(
    st.tuples(
        st.sampled_from(["Host", "Connection", "Transfer-Encoding", "Expect", "Content-Type", "X-Forwarded-For",
                         "Cookie"]) | st.text(_token_char, min_size=1, max_size=20),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
    ).filter(lambda kv: kv[0].lower() not in ("authorization", "content-length") and ":" not in kv[0]),
    max_size=6,
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, str, str, bool]:
    method, path, version = draw(METHODS), draw(PATHS), draw(VERSIONS)
    auth = draw(st.sampled_from(VALID_AUTH + INVALID_AUTH))
    headers = list(draw(EXTRA_HEADERS))
    if auth is not None:
        headers.insert(draw(st.integers(0, len(headers))), ("Authorization", auth))
    body = draw(BODIES)
    length = draw(CONTENT_LENGTHS | st.just(str(len(body))))
    if length is not None:
        headers.append(("Content-Length", length))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    line = " ".join(x for x in (method, path, version) if x)
    head = eol.join([line, *(f"{k}: {v}" for k, v in headers)]) + eol + eol
    return head.encode("utf-8") + body, method, path, auth in VALID_AUTH


# --- the fuzzers ----------------------------------------------------------------------------------
@FUZZ
@given(req=requests())
def test_raw_requests_get_documented_answers_and_never_switch_without_token(server: Running, req) -> None:  # type: ignore[no-untyped-def]
    data, method, path, authorized = req
    server.agent.reset()
    raw = exchange(server.port, data)
    assert raw, f"no answer at all to {data[:200]!r}"
    status, _, _ = parse_response(raw, head=method == "HEAD")
    assert status in documented_statuses(method, path), f"{status} is not documented for {method} {path!r}"
    calls = server.agent.calls()
    if calls:
        assert authorized, f"request_switchover reached without the token: {data[:300]!r}"
        assert status in (202, 409)
        (to, force), = calls
        assert to is None or isinstance(to, str)
        assert isinstance(force, bool)
    if status == 202:
        assert authorized and calls


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=2000),
    st.lists(st.binary(max_size=80), max_size=8).map(lambda parts: b"\r\n".join(parts) + b"\r\n\r\n"),
    st.sampled_from([b"\r\n\r\n", b"GET\r\n\r\n", b"GET /status\r\n\r\n", b"POST /switchover\r\n\r\n",
                     b"GET " + b"/" * 70000 + b" HTTP/1.0\r\n\r\n",
                     b"GET /status HTTP/1.0\r\n" + b"X: y\r\n" * 150 + b"\r\n",
                     b"GET /status HTTP/1.0\r\nX: " + b"y" * 70000 + b"\r\n\r\n",
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
                     b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 preface
                     b"\x00" * 1000, "GET /ståtus HTTP/1.0\r\n\r\n".encode()]),
))
def test_garbage_bytes_never_crash_hang_or_switch(server: Running, data: bytes) -> None:
    server.agent.reset()
    raw = exchange(server.port, data)
    first_line = data.split(b"\n", 1)[0]
    if not raw:  # the base server stays silent only on a request line without words (str.split, latin-1)
        assert not first_line.decode("latin-1").split(), f"no answer to {data[:200]!r}"
    else:
        status, _, _ = parse_response(raw, head=first_line.startswith(b"HEAD "))
        assert status in EVERY_STATUS
    assert server.agent.calls() == []


_JSON_BODIES = st.one_of(
    st.fixed_dictionaries({}, optional={
        "to": st.none() | st.sampled_from([*MEMBERS, "", "n-9", "n-1\n", "n-1' OR 1=1"]) | JSON_VALUES,
        "force": st.booleans() | JSON_VALUES,
    }),
    JSON_VALUES,
)


@FUZZ
@given(path=st.sampled_from(["/switchover", "/failover"]), body=_JSON_BODIES,
       auth=st.sampled_from(VALID_AUTH[:3] + HTTPX_INVALID_AUTH))
def test_schema_bodies_over_httpx(server: Running, path: str, body: object, auth: str | None) -> None:
    """Bodies from the OpenAPI request schema, and wrong types at every field, through a real client."""
    server.agent.reset()
    headers = {"Authorization": auth} if auth is not None else {}
    response = server.http.post(path, content=json.dumps(body).encode(), headers=headers)
    assert response.status_code in documented_statuses("POST", path)
    assert "error" in response.json() or response.status_code == 202
    calls = server.agent.calls()
    if auth not in VALID_AUTH:
        assert response.status_code == 401 and calls == []
        return
    keys = {"to", "force"} if path == "/failover" else {"to"}  # strict bodies: any other key is refused
    well_typed = isinstance(body, dict) and set(body) <= keys and (
        body.get("to") is None or (isinstance(body.get("to"), str) and body.get("to") != "")) and (
        isinstance(body.get("force", False), bool))
    if not well_typed or (path == "/failover" and not body.get("to")):
        assert response.status_code == 400 and calls == []
    else:
        assert calls == [(body.get("to"), bool(body.get("force")) and path == "/failover")]  # type: ignore[union-attr]
        assert response.status_code == (202 if body.get("to") in ("n-1", "n-2") or (  # type: ignore[union-attr]
            body.get("to") is None) else 409)  # type: ignore[union-attr]


def test_server_still_answers_after_the_fuzzers(server: Running) -> None:
    liveness_ok(server)
    assert httpx.get(server.url + "/status", timeout=2.0).json()["role"] == "primary"


# --- authentication ---------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", INVALID_AUTH)
@pytest.mark.parametrize("path", ["/switchover", "/failover", "/switchover?token=" + TOKEN])
def test_switchover_without_the_token_is_401_and_changes_nothing(server: Running, path: str, auth: str | None) -> None:
    server.agent.reset()
    headers = {"Authorization": auth} if auth is not None else {}
    try:
        response = server.http.post(path, json={"to": "n-1", "force": True}, headers=headers)
    except (httpx.LocalProtocolError, UnicodeEncodeError):  # httpx refuses to send some of these headers at all
        raw = exchange(server.port, (f"POST {path} HTTP/1.0\r\nAuthorization: {auth}\r\nContent-Length: 2\r\n\r\n"
                                     "{}").encode())
        assert parse_response(raw)[0] == 401
    else:
        assert response.status_code == 401
        assert "Bearer" in response.json()["error"]
    assert server.agent.calls() == []


def test_with_the_token_switchover_reaches_the_agent(server: Running) -> None:
    server.agent.reset()
    response = httpx.post(server.url + "/switchover", json={"to": "n-1"},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5.0)
    assert response.status_code == 202
    assert server.agent.calls() == [("n-1", False)]


@pytest.mark.parametrize("token", [None, ""])
def test_a_node_without_a_token_refuses_every_mutation(make_server, token: str | None) -> None:  # type: ignore[no-untyped-def]
    """Fail closed: no token configured (or an empty token file) disables mutations instead of opening them."""
    running = make_server(token)
    for auth in (None, "Bearer ", "Bearer", f"Bearer {TOKEN}", "Bearer None", "Basic Og=="):
        header = f"Authorization: {auth}\r\n" if auth is not None else ""
        for path in ("/switchover", "/failover"):
            request = f'POST {path} HTTP/1.1\r\n{header}Content-Length: 13\r\n\r\n{{"to": "n-1"}}'
            raw = exchange(running.port, request.encode())
            assert parse_response(raw)[0] == 403, (auth, path)
    assert running.agent.calls() == []
    assert running.http.get("/status").status_code == 200  # reads stay open


def test_read_only_endpoints_stay_open_and_match_the_description(server: Running) -> None:
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            if method == "post":
                continue
            response = httpx.request(method.upper(), server.url + path, timeout=2.0)
            assert str(response.status_code) in op["responses"], (method, path, response.status_code)
            assert op["security"] == []
    assert httpx.get(server.url + "/openapi.json", timeout=2.0).json() == json.loads(json.dumps(OPENAPI))
    for path in ("/switchover", "/failover"):
        assert OPENAPI["paths"][path]["post"]["security"] == [{"bearer": []}]


# --- big bodies, chunked bodies ------------------------------------------------------------------------
def test_a_body_over_16_kib_is_refused_without_being_read(server: Running) -> None:
    server.agent.reset()
    # Announce 10 MiB and send none of it: an answer at once proves the server did not wait to read it.
    started = time.monotonic()
    raw = exchange(server.port, (f"POST /switchover HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                                 f"Content-Length: {10 * 2**20}\r\n\r\n").encode(), timeout=3.0)
    assert parse_response(raw)[0] == 413
    assert time.monotonic() - started < 1.0
    # Send it too: still refused (not 202), and the connection is not kept reading.
    for size in (MAX_BODY + 1, 64 * 1024, 2 * 2**20):
        body = b'{"to": "n-1", "pad": "' + b"x" * size + b'"}'
        raw = exchange(server.port, (f"POST /switchover HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                                     f"Content-Length: {len(body)}\r\n\r\n").encode() + body, timeout=5.0)
        if raw:  # the kernel may reset a connection closed with unread data before we read the answer
            assert parse_response(raw)[0] == 413
    # Exactly the limit is read and accepted.
    body = b'{"to": "n-1"}'.ljust(MAX_BODY, b" ")
    response = httpx.post(server.url + "/switchover", content=body, timeout=5.0,
                          headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert response.status_code == 202
    assert server.agent.calls() == [("n-1", False)]


def test_chunked_bodies_are_refused(server: Running) -> None:
    server.agent.reset()
    chunk = b'{"to": "n-1"}'
    raw = exchange(server.port, (f"POST /switchover HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n").encode()
                   + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
    assert parse_response(raw)[0] == 400
    assert server.agent.calls() == []


# --- slow clients ---------------------------------------------------------------------------------------------
def test_slow_clients_do_not_block_others(server: Running) -> None:
    """Fifty clients each send half a request and wait; a probe from someone else still answers within 1 s."""
    assert _Handler.timeout == 10
    slow = []
    try:
        for i in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"POST /switchover HTTP/1.1\r\nContent-Length: 100\r\n" if i % 2 else b"GE")
            slow.append(sock)
        for path in ("/liveness", "/primary", "/status", "/metrics"):
            started = time.monotonic()
            response = httpx.get(server.url + path, timeout=1.0)
            assert response.status_code == 200
            assert time.monotonic() - started < 1.0
    finally:
        for sock in slow:
            sock.close()
    assert server.agent.calls() == []


def test_a_stalled_connection_is_closed_after_the_timeout(make_server) -> None:  # type: ignore[no-untyped-def]
    running = make_server()
    running.api.httpd.RequestHandlerClass.timeout = 0.5  # the real value is 10 s; the mechanism is the same
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(f"POST /switchover HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 50\r\n\r\n"
                     '{"to": "n-1"'.encode())  # headers complete, body short: the server waits for the rest
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert time.monotonic() - started < 3.0
    assert running.agent.calls() == []  # a timed-out body never becomes a switchover
    if data:
        assert parse_response(data)[0] == 400
    liveness_ok(running)


def test_concurrent_garbage_and_probes(server: Running) -> None:
    """Garbage from several threads at once while probes keep answering."""
    errors: list[BaseException] = []

    def hammer(seed: int) -> None:
        try:
            for i in range(40):
                exchange(server.port, bytes((seed * 31 + i * 7 + k) % 256 for k in range(300)) + b"\r\n\r\n")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for _ in range(20):
        liveness_ok(server)
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert server.agent.calls() == []
