"""The node's HTTP face: probes, status, metrics, switchover, and the store's view on /cluster.

Read-only endpoints answer from the agent's last snapshot (no SQL on the request path), so
probes stay cheap and `/liveness` depends only on the agent loop, never on postgres.
Mutating endpoints require the cluster's API token; a node without one refuses them (403). Their
bodies are strict (pgkeel.api.bodies), and a request the store's view forbids now is refused with
the reason instead of being recorded for the leader to drop (pgkeel.ha.switchover_request).
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol

from pgkeel.api import probes
from pgkeel.api.bodies import (
    BackupBody,
    BodyError,
    CancelSwitchoverBody,
    FailoverBody,
    FailsafeBody,
    MembershipBody,
    PauseBody,
    ReinitBody,
    ReloadBody,
    RestartBody,
    ResumeBody,
    SwitchoverBody,
    parse_body,
)
from pgkeel.api.cluster import encode_cluster
from pgkeel.api.metrics import render_metrics
from pgkeel.api.openapi import MAX_BODY, MUTATING, OPENAPI, REFUSAL_STATUS
from pgkeel.dcs import DCS, DCSError
from pgkeel.ha.plan_reinit import ReinitRefused
from pgkeel.ha.plan_restart import RestartRefused
from pgkeel.ha.records import ClusterState
from pgkeel.ha.status import NodeStatus
from pgkeel.ha.switchover_request import RequestRefused

log = logging.getLogger("pgkeel.api")


class Node(Protocol):
    """What the API needs of the node it fronts (the agent loop implements it)."""

    def status(self) -> NodeStatus: ...

    def loop_alive(self) -> bool: ...

    def wake(self) -> None: ...

    def request_switchover(
        self, to: str | None, force: bool = False, leader: str | None = None, at: float | None = None
    ) -> dict[str, Any]:
        """Record the request (at once, or scheduled `at`), or raise RequestRefused (ValueError) with what the
        store's view forbids now."""
        ...

    def cancel_switchover(self) -> dict[str, Any] | None:
        """Remove the pending switchover request: the one removed, or None (raises DCSError)."""
        ...

    def request_reinit(self) -> dict[str, Any]:
        """Accept a re-clone of this replica from the leader, or raise ReinitRefused (ValueError) with the reason."""
        ...

    def pause(self, until: float | None, reason: str | None, by: str | None) -> dict[str, Any]:
        """Maintenance mode in the store (raises DCSError when it cannot be written)."""
        ...

    def resume(self) -> bool:
        """Leave maintenance mode; False when it was not paused."""
        ...

    def set_membership(self, members: list[str], sync_standbys: int) -> dict[str, Any]:
        """Record the members after a scaling (raises DCSError when it cannot be written)."""
        ...

    def history(self) -> list[dict[str, Any]]:
        """Every recorded change of primary, oldest first (raises DCSError)."""
        ...

    def request_backup(self, kind: str, by: str | None) -> dict[str, Any]:
        """Queue an on-demand backup; LookupError when the cluster has no spec.backup (raises DCSError)."""
        ...

    def backups(self) -> dict[str, Any]:
        """The store's backups record (raises DCSError)."""
        ...

    def repository(self) -> dict[str, Any]:
        """The backups in the cluster's repository (LookupError without spec.backup; RuntimeError when unreadable)."""
        ...

    def request_restart(self, in_place: bool = False) -> dict[str, Any]:
        """Accept a restart of this node's postgres, or raise RestartRefused (ValueError) with the reason."""
        ...

    def reload(self) -> dict[str, Any]:
        """Reload postgres' configuration files now."""
        ...

    def failsafe_promise(self, leader: str) -> dict[str, Any]:
        """Promise `leader` not to lead for one ttl, or raise ValueError naming why not (pgkeel.ha.failsafe)."""
        ...


class _Handler(BaseHTTPRequestHandler):
    agent: ClassVar[Node]
    token: ClassVar[str | None]
    store: ClassVar[DCS | None]  # read for GET /cluster only; None: that endpoint is not served
    server_version = "pgkeel"
    sys_version = ""
    # Answer even a request line too broken to name its version with a status line and headers
    # (the base class would fall back to HTTP/0.9: a bare body that no client can tell from data).
    default_request_version = "HTTP/1.0"
    timeout = 10  # a slow client cannot hold a thread forever

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        major, minor = (int(x) for x in self.request_version.split("/", 1)[1].split("."))
        if (major, minor) < (1, 0):  # HTTP/0.9 answers carry no status line: refuse them in HTTP/1.0
            self.request_version = self.default_request_version
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.0 or newer is required")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if self.request_version == "HTTP/0.9":  # set by the base parser for `… HTTP/0.9` request lines
            self.request_version = self.default_request_version
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (json.dumps(body, indent=1) + "\n").encode()
        if self.command == "OPTIONS":  # the status GET would give, no body (HAProxy's `option httpchk OPTIONS …`)
            data = b""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_OPTIONS(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        status = self.agent.status()
        path, _, query = self.path.partition("?")
        probe = probes.answer(path, query, status, self.agent.loop_alive())  # Patroni's probes (pgkeel.api.probes)
        if probe is not None:
            self._send(probe.status, probe.body)
            return
        snap = status.model_dump(mode="json")
        if path == "/history":
            self._history()
            return
        if path == "/backups":
            self._store_read(self.agent.backups)
            return
        if path == "/backups/repository":
            self._repository()
            return
        if path == "/cluster" and self.store is not None:
            self._cluster(self.store)
            return
        if path == "/status":
            self._send(HTTPStatus.OK, snap)
        elif path == "/metrics":
            self._send(HTTPStatus.OK, render_metrics(snap), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/openapi.json":
            self._send(HTTPStatus.OK, OPENAPI)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})

    def _authorized(self) -> bool:
        if not self.token:  # no token, or an empty one: fail closed (see do_POST)
            return False
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def _body(self) -> dict[str, Any] | None:
        if "Transfer-Encoding" in self.headers:  # not read here: acting on it would ignore what was sent
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY:
            return None
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _too_long(self) -> bool:
        try:
            return int(self.headers.get("Content-Length") or 0) > MAX_BODY
        except ValueError:
            return False

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/wake":  # harmless: only shortens the wait before the next loop
            self.agent.wake()
            self._send(HTTPStatus.OK, {"ok": True})
            return
        if path not in MUTATING:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            return
        if not self.token:
            self._send(HTTPStatus.FORBIDDEN, {"error": "no API token is configured on this node: "
                                              "switchover, failover and pause through the API are disabled"})
            return
        if not self._authorized():
            self._send(HTTPStatus.UNAUTHORIZED, {"error": "a valid 'Authorization: Bearer <token>' is required"})
            return
        if self._too_long():
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY} bytes; not read"})
            return
        body = self._body()
        if body is None:
            self._send(HTTPStatus.BAD_REQUEST, {"error": "body must be a JSON object of at most 16 KiB",
                                                "reason": "bad-body"})
            return
        try:
            parsed = parse_body(path, body)
        except BodyError as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc), "reason": "bad-body"})
            return
        if isinstance(parsed, PauseBody | ResumeBody | MembershipBody):
            self._maintenance(parsed)
            return
        if isinstance(parsed, RestartBody | ReloadBody):
            self._restart(parsed)
            return
        if isinstance(parsed, CancelSwitchoverBody | ReinitBody):
            self._node_request(parsed)
            return
        if isinstance(parsed, BackupBody):
            self._backup(parsed)
            return
        if isinstance(parsed, FailsafeBody):
            try:
                self._send(HTTPStatus.OK, {"promised": self.agent.failsafe_promise(parsed.leader)})
            except ValueError as exc:
                self._send(HTTPStatus.CONFLICT, {"error": str(exc), "reason": "no-promise"})
            return
        assert isinstance(parsed, SwitchoverBody)
        force = isinstance(parsed, FailoverBody) and parsed.force
        try:
            request = self.agent.request_switchover(parsed.target, force=force, leader=parsed.leader, at=parsed.at)
        except RequestRefused as exc:
            self._send(REFUSAL_STATUS[exc.reason], {"error": str(exc), "reason": str(exc.reason)})
            return
        except ValueError as exc:
            self._send(HTTPStatus.CONFLICT, {"error": str(exc)})
            return
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})
            return
        self._send(HTTPStatus.ACCEPTED, {"accepted": request})


    def _maintenance(self, parsed: PauseBody | ResumeBody | MembershipBody) -> None:
        try:
            if isinstance(parsed, MembershipBody):
                recorded = self.agent.set_membership(parsed.members, parsed.sync_standbys)
                self._send(HTTPStatus.OK, {"membership": recorded})
            elif isinstance(parsed, PauseBody):
                until = parsed.until if parsed.seconds is None else time.time() + parsed.seconds
                self._send(HTTPStatus.OK, {"paused": self.agent.pause(until, parsed.reason, parsed.by)})
            else:
                self._send(HTTPStatus.OK, {"resumed": True, "was_paused": self.agent.resume()})
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})

    def _restart(self, parsed: RestartBody | ReloadBody) -> None:
        try:
            if isinstance(parsed, RestartBody):
                self._send(HTTPStatus.ACCEPTED, {"accepted": self.agent.request_restart(parsed.in_place)})
            else:
                self._send(HTTPStatus.OK, self.agent.reload())
        except RestartRefused as exc:
            self._send(HTTPStatus.CONFLICT, {"error": str(exc), "reason": "leader-restart"})
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})

    def _node_request(self, parsed: CancelSwitchoverBody | ReinitBody) -> None:
        try:
            if isinstance(parsed, ReinitBody):
                self._send(HTTPStatus.ACCEPTED, {"accepted": self.agent.request_reinit()})
            else:
                self._send(HTTPStatus.OK, {"cancelled": self.agent.cancel_switchover()})
        except ReinitRefused as exc:
            self._send(HTTPStatus.CONFLICT, {"error": str(exc), "reason": "reinit-refused"})
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})

    def _cluster(self, store: DCS) -> None:
        try:
            self._send(HTTPStatus.OK, encode_cluster(ClusterState.decode(store.view())))
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})

    def _backup(self, parsed: BackupBody) -> None:
        try:
            self._send(HTTPStatus.ACCEPTED, {"accepted": self.agent.request_backup(parsed.kind, parsed.by)})
        except LookupError as exc:
            self._send(HTTPStatus.CONFLICT, {"error": str(exc), "reason": "no-backup"})
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})

    def _repository(self) -> None:
        try:
            self._send(HTTPStatus.OK, self.agent.repository())
        except LookupError as exc:
            self._send(HTTPStatus.CONFLICT, {"error": str(exc), "reason": "no-backup"})
        except RuntimeError as exc:  # BackupError: pgBackRest's reason
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"the repository could not be read: {exc}",
                                                        "reason": "repository-unreachable"})

    def _store_read(self, read: Callable[[], dict[str, Any]]) -> None:
        try:
            self._send(HTTPStatus.OK, read())
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})

    def _history(self) -> None:
        try:
            self._send(HTTPStatus.OK, {"events": self.agent.history()})
        except DCSError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"coordination store unreachable: {exc}",
                                                        "reason": "store-unreachable"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Listen backlog (the base class's 5 drops a burst of connections into 1 s SYN retries, which
    # would make probes miss their deadline while a few clients connect at once).
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away or stalled: one line, not a traceback per client
            log.debug("API client %s: %s", client_address, exc)
            return
        log.exception("API request from %s failed", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


LOOPBACK = "127.0.0.1"


def _also_on_loopback(host: str) -> bool:
    """A specific non-loopback address (a pod IP) is served on 127.0.0.1 too: `kubectl port-forward`
    connects to the pod's loopback, never to its IP. Names and wildcards are bound as given."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


class ApiServer:
    """Serves the API in daemon threads beside the agent loop: on HOST (HTTPS with `tls`), and on 127.0.0.1
    as well when HOST is another IP address (same port, same handler, same token; plain HTTP)."""

    def __init__(
        self, agent: Node, host: str, port: int, token: str | None = None, tls: ssl.SSLContext | None = None,
        store: DCS | None = None,
    ) -> None:
        handler = type("Handler", (_Handler,), {"agent": agent, "token": token, "store": store})
        self.httpd: _Server = (_Server6 if ":" in host else _Server)((host, port), handler)
        if tls is not None:  # HTTPS on HOST; the handshake runs in the request's thread, never in accept()
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.servers = [self.httpd]
        if _also_on_loopback(host):
            try:
                self.servers.append(_Server((LOOPBACK, int(self.httpd.server_address[1])), handler))
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:  # taken by another process: never serve beside it
                    self.httpd.server_close()
                    raise
                log.warning("API not on %s (no loopback here): %s", LOOPBACK, exc)
        self.threads = [
            threading.Thread(target=server.serve_forever, name="pgkeel-api", daemon=True) for server in self.servers
        ]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the API listens, (host, port) each."""
        return [(str(s.server_address[0]), int(s.server_address[1])) for s in self.servers]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
