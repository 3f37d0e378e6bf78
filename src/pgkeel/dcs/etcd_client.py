"""A minimal etcd v3 client over the JSON gRPC-gateway (``/v3/...``, etcd >= 3.4).

Why not a gRPC library: the gateway needs only httpx, already a dependency. Each call is
bounded by a deadline shared by the whole DCS operation; endpoints are tried in turn, but a
request is only re-sent elsewhere when it provably never reached a server (connect failure)
or the server said it is unavailable, so a slow answer is never applied twice by accident.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from pgkeel.dcs.base import DCSError
from pgkeel.dcs.etcd_access import EtcdAccess, stale_token

API_PREFIX = "/v3"  # etcd 3.3 used /v3beta; 3.4 serves both, 3.5 only /v3.

GRPC_NOT_FOUND = 5
GRPC_UNAVAILABLE = 14


class EtcdRPCError(DCSError):
    """etcd answered with an error (e.g. code 5 'requested lease not found')."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"etcd error {code}: {message}")
        self.code = code
        self.message = message


def b64(text: str) -> str:
    """etcd's JSON gateway carries keys and values as base64 bytes."""
    return base64.b64encode(text.encode()).decode()


def unb64(data: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise DCSError(f"etcd returned undecodable bytes: {exc}") from exc


def as_int(obj: dict[str, Any], key: str) -> int:
    """int64 fields arrive as strings and are omitted when zero (proto3 JSON)."""
    try:
        return int(obj.get(key, 0))
    except (TypeError, ValueError) as exc:
        raise DCSError(f"etcd returned a non-integer {key}: {obj.get(key)!r}") from exc


def prefix_end(prefix: str) -> str:
    """The range_end that selects every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return base64.b64encode(bytes(raw)).decode()
        raw.pop()
    return base64.b64encode(b"\0").decode()


def parse_endpoints(spec: str) -> list[str]:
    """'host:port[,host:port...]' -> ['http://host:port', ...]."""
    endpoints = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "://" not in part:
            part = "http://" + part
        url = httpx.URL(part)
        if url.scheme not in ("http", "https") or not url.host or url.port is None:
            raise ValueError(f"etcd endpoint must be host:port: {part!r}")
        endpoints.append(f"{url.scheme}://{url.host}:{url.port}")
    if not endpoints:
        raise ValueError(f"no etcd endpoints in {spec!r}")
    return endpoints


def _code(value: Any) -> int:
    """A gRPC status code from an error body; 2 (UNKNOWN) when it is missing or odd."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 2


class EtcdClient:
    """POSTs JSON to the gateway of the first endpoint that answers, within a deadline."""

    def __init__(self, endpoints: Sequence[str], timeout: float, access: EtcdAccess | None = None) -> None:
        self.endpoints = parse_endpoints(",".join(endpoints))
        self.timeout = timeout
        self.access = access or EtcdAccess()
        self._current = 0
        context = self.access.ssl_context()
        self._http = httpx.Client(http2=False, trust_env=False, verify=context if context is not None else True)
        self._token: str | None = None  # etcd's auth token, None until the first authenticate (or after expiry)

    def call(self, method: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Call e.g. 'kv/range'; raise DCSError when no endpoint answers before `deadline`.

        With auth on, a request refused for a stale token (so not applied) is resent once with a new token."""
        if self.access.user is not None and self._token is None:
            self._authenticate(deadline)
        try:
            return self._call(method, body, deadline)
        except EtcdRPCError as exc:
            if self.access.user is None or not stale_token(exc.code, exc.message):
                raise
        self._authenticate(deadline)
        return self._call(method, body, deadline)

    def _authenticate(self, deadline: float) -> None:
        self._token = None
        try:
            credentials = self.access.credentials()
        except (OSError, ValueError) as exc:
            raise DCSError(f"etcd password: {exc}") from exc
        assert credentials is not None  # only called with a user and its password file
        user, password = credentials
        try:
            answer = self._call("auth/authenticate", {"name": user, "password": password}, deadline)
        except EtcdRPCError as exc:
            raise EtcdRPCError(exc.code, f"authenticating as {user!r}: {exc.message} (check spec.store.etcd.auth: "
                                         "the user, its password file, and that etcd has that user)") from exc
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise DCSError(f"etcd auth/authenticate as {user!r} returned no token: {answer!r}")
        self._token = token

    def _call(self, method: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        errors: list[str] = []
        count = len(self.endpoints)
        for attempt in range(count):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            index = (self._current + attempt) % count
            endpoint = self.endpoints[index]
            # Share the connect budget among the endpoints still to try.
            timeout = httpx.Timeout(remaining, connect=remaining / (count - attempt))
            try:
                headers = {"Authorization": self._token} if self._token else {}
                response = self._http.post(
                    f"{endpoint}{API_PREFIX}/{method}", json=body, timeout=timeout, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                errors.append(f"{endpoint}: {exc!r}")
                continue
            except httpx.HTTPError as exc:
                # Sent but unanswered: it may have been applied, do not resend elsewhere.
                self._current = (index + 1) % count
                raise DCSError(f"etcd {endpoint} {method}: {exc!r}") from exc
            try:
                return self._decode(response)
            except EtcdRPCError as exc:
                if exc.code != GRPC_UNAVAILABLE:
                    self._current = index
                    raise
                errors.append(f"{endpoint}: {exc}")
        self._current = (self._current + 1) % count
        detail = "; ".join(errors) or "deadline passed before any attempt"
        raise DCSError(f"etcd {method}: no endpoint answered in time ({detail})")

    @staticmethod
    def _decode(response: httpx.Response) -> dict[str, Any]:
        text = response.text
        try:
            data = json.loads(text)
        except ValueError:
            try:  # streaming RPCs (lease/keepalive) may send newline-delimited messages
                data = json.loads(text.splitlines()[0])
            except (ValueError, IndexError) as exc:
                raise DCSError(f"etcd answered HTTP {response.status_code} with garbage: {text[:200]!r}") from exc
        if not isinstance(data, dict):
            raise DCSError(f"etcd answered with a non-object: {text[:200]!r}")
        error = data.get("error")
        if isinstance(error, dict):  # streaming error shape
            raise EtcdRPCError(_code(error.get("grpc_code")), str(error.get("message", error)))
        if error is not None or response.status_code != 200:
            raise EtcdRPCError(_code(data.get("code")), str(data.get("message", error or text[:200])))
        result = data.get("result", data)
        if not isinstance(result, dict):
            raise DCSError(f"etcd answered with a non-object result: {text[:200]!r}")
        return result

    def close(self) -> None:
        self._http.close()
