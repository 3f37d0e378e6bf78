"""The probes over a real ApiServer: GET, HEAD and OPTIONS the way HAProxy sends them (pgkeel.api.probes)."""

from __future__ import annotations

import socket

from api_fakes import Running


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_haproxy_options_check_gets_the_probe_status_and_no_body(server: Running) -> None:
    # What HAProxy 2.6 sends for `option httpchk OPTIONS /primary` (HTTP/1.0, no Host header).
    answer = raw_request(server.port, b"OPTIONS /primary HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ") and b"Content-Length: 0" in head and body == b""
    answer = raw_request(server.port, b"OPTIONS /replica HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 503 ")  # the fake agent is the primary


def test_get_head_and_options_agree_on_every_probe(server: Running) -> None:
    for path in ("/", "/primary", "/read-write", "/leader", "/replica", "/read-only", "/standby-leader",
                 "/sync", "/async", "/health", "/liveness", "/readiness", "/read-only?lag=1MB"):
        got = server.http.get(path)
        head = server.http.head(path)
        options = server.http.options(path)
        assert got.status_code == head.status_code == options.status_code, path
        assert got.json()["ok"] is (got.status_code == 200)
        assert head.content == b"" and options.content == b""
    assert server.http.get("/read-only").status_code == 200  # Patroni: the primary is read-only-capable too
    assert server.http.get("/replica").status_code == 503


def test_a_bad_probe_query_is_400_naming_the_key_and_an_unknown_path_stays_404(server: Running) -> None:
    response = server.http.get("/replica?lag=16mb")
    assert response.status_code == 400 and "lag" in response.json()["error"]
    assert server.http.options("/replica?lga=1MB").status_code == 400
    assert server.http.get("/primaryx").status_code == 404
    assert server.http.options("/nope").status_code == 404
    assert server.http.get("/status?lag=whatever").status_code == 200  # only probes read the query
