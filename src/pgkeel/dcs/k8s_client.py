"""The few Kubernetes API calls the store makes, each bounded by a deadline, errors sorted by meaning.

Transport, TLS and authentication are the official `kubernetes` client's (`ApiClient`); bodies go
out as plain JSON through its generic `call_api`, not through its generated models, because the
models re-serialise MicroTime without the fixed six fractional digits the API server requires.

A 409 (`Conflict`: stale resourceVersion or AlreadyExists) and a 404 (`NotFound`) are answers
the caller acts on; everything else (refused, reset, timed out, 5xx, 401/403, garbage) is a
`DCSError`: the store could not be asked. Every call is checked against `AGENT_API_CALLS`, the
list the rendered Role is generated from, so the store cannot drift beyond its RBAC grant.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes.client import ApiClient, ApiException, Configuration

from pgkeel.dcs.base import DCSError, check_ttl
from pgkeel.dcs.k8s_contract import AGENT_API_CALLS

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REFRESH_SECONDS = 60.0  # projected service-account tokens rotate; client-go re-reads them too
LEASES = ("coordination.k8s.io", "leases")
PODS = ("", "pods")
STATEFULSETS = ("apps", "statefulsets")
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
RETRY_PAUSE = 0.05
RETRY_JITTER = 0.1  # a fraction added to each pause, so members throttled together do not return together
MIN_REQUEST_SECONDS = 0.005


def micro_time() -> str:
    """Now as a Kubernetes MicroTime: RFC 3339 with exactly six fractional digits."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_seconds(ttl: float) -> int:
    """leaseDurationSeconds is an integer: round up, so observers never wait less than asked."""
    return max(1, math.ceil(check_ttl(ttl)))


class Conflict(Exception):
    """409: the object changed since it was read, or a create found it already there."""


class NotFound(Exception):
    """404: no such object."""


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is and how to authenticate to it."""

    url: str
    token_file: Path | None = None
    ca_file: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Endpoint:
        """In-cluster defaults (KUBERNETES_SERVICE_HOST/PORT, the service-account files), each overridable."""
        env = dict(os.environ if env is None else env)
        url = env.get("PGKEEL_K8S_API", "")
        if not url:
            host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise DCSError("no Kubernetes API: set KUBERNETES_SERVICE_HOST (in a pod) or PGKEEL_K8S_API")
            url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        token = Path(env.get("PGKEEL_K8S_TOKEN_FILE", SERVICE_ACCOUNT_DIR / "token"))
        ca = Path(env.get("PGKEEL_K8S_CA_FILE", SERVICE_ACCOUNT_DIR / "ca.crt"))
        return cls(url.rstrip("/"), token, ca if url.startswith("https://") else None)


class KubeClient:
    """Namespaced leases and pods over one pooled connection; no retries: the caller owns the deadline."""

    def __init__(self, endpoint: Endpoint, namespace: str) -> None:
        self.namespace = namespace
        config = Configuration(host=endpoint.url)
        config.retries = False  # a retry would run past the caller's deadline
        if endpoint.ca_file is not None:
            config.ssl_ca_cert = str(endpoint.ca_file)
        self._token_file = endpoint.token_file
        self._token_read = -TOKEN_REFRESH_SECONDS
        if endpoint.token_file is not None:
            config.api_key["BearerToken"] = ""  # present, so the client asks the hook before each request
            # kubernetes' Configuration initialises the hook to None without an annotation.
            config.refresh_api_key_hook = self._refresh_token  # type: ignore[assignment]
        self._api = ApiClient(config)

    def _refresh_token(self, config: Configuration) -> None:
        now = time.monotonic()
        if self._token_file is None or now - self._token_read < TOKEN_REFRESH_SECONDS:
            return
        try:
            token = self._token_file.read_text().strip()
        except OSError as exc:
            raise DCSError(f"cannot read the service-account token {self._token_file}: {exc}") from exc
        config.api_key["BearerToken"] = f"Bearer {token}"
        self._token_read = now

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]  # ApiClient.close is unannotated

    # --- the calls -----------------------------------------------------------------------
    def get_lease(self, name: str, deadline: float) -> dict[str, Any]:
        return self._call("GET", LEASES, "get", deadline, name)

    def create_lease(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        return self._call("POST", LEASES, "create", deadline, body=body)

    def replace_lease(self, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        """PUT with body.metadata.resourceVersion: the compare-and-swap."""
        return self._call("PUT", LEASES, "update", deadline, body["metadata"]["name"], body=body)

    def list_pods(self, selector: str, deadline: float) -> list[dict[str, Any]]:
        answer = self._call("GET", PODS, "list", deadline, query=[("labelSelector", selector)])
        items = answer.get("items")
        if not isinstance(items, list):
            raise DCSError("pod list without items")
        return items

    def patch_pod(self, name: str, patch: dict[str, Any], deadline: float) -> dict[str, Any]:
        """JSON merge patch (RFC 7386); with metadata.resourceVersion in it, also a compare-and-swap."""
        return self._call("PATCH", PODS, "patch", deadline, name, body=patch, content_type=MERGE_PATCH)

    def delete_pod(self, name: str, uid: str, deadline: float) -> dict[str, Any]:
        """DELETE with a uid precondition: only the pod incarnation the caller judged, never its successor."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        return self._call("DELETE", PODS, "delete", deadline, name, body=body)

    def get_stateful_set(self, name: str, deadline: float) -> dict[str, Any]:
        return self._call("GET", STATEFULSETS, "get", deadline, name)

    # --- plumbing ------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        kind: tuple[str, str],
        verb: str,
        deadline: float,
        name: str | None = None,
        *,
        body: dict[str, Any] | None = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = JSON,
    ) -> dict[str, Any]:
        """One call, retried while time is left when it surely changed nothing (a read, refused, 429, 503).

        A 429 or 503 is retried no sooner than its Retry-After, and only if that still fits the deadline;
        otherwise the call fails at once rather than wait past what the caller allowed.
        """
        group, resource = kind
        if (group, resource, verb) not in AGENT_API_CALLS:
            raise RuntimeError(f"{verb} {resource}.{group} is not in AGENT_API_CALLS: the Role would refuse it")
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        path = f"{prefix}/namespaces/{self.namespace}/{resource}" + (f"/{name}" if name else "")
        what = f"{verb} {resource} {name or ''}".rstrip()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= MIN_REQUEST_SECONDS:
                raise DCSError(f"{what}: no time left within the store timeout")
            try:
                reading = verb in ("get", "list")
                status, raw, retry_after = self._send(
                    method, path, query, body, content_type, remaining, what, reading
                )
            except _Retryable as exc:
                if deadline - time.monotonic() <= RETRY_PAUSE + MIN_REQUEST_SECONDS:
                    raise DCSError(str(exc)) from exc
                time.sleep(RETRY_PAUSE)
                continue
            # 429 and 503 come before the server touched the object (APF, shutdown): a write may go again too.
            transient = status in (429, 503) or (reading and status >= 500)
            # Never sooner than the server asked: retrying early only burns the same APF flow's seats.
            pause = max(RETRY_PAUSE, retry_after) * (1 + random.uniform(0, RETRY_JITTER))
            if transient and deadline - time.monotonic() > pause + MIN_REQUEST_SECONDS:
                time.sleep(pause)
                continue
            break
        if status == 409:
            raise Conflict(f"{what}: {_message(raw)}")
        if status == 404:
            raise NotFound(f"{what}: {_message(raw)}")
        if not 200 <= status < 300:
            raise DCSError(f"{what}: HTTP {status}: {_message(raw)}")
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise DCSError(f"{what}: the API server answered with invalid JSON") from exc
        if not isinstance(answer, dict):
            raise DCSError(f"{what}: the API server answered with a non-object")
        return answer

    def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None,
        body: dict[str, Any] | None,
        content_type: str,
        timeout: float,
        what: str,
        idempotent: bool,
    ) -> tuple[int, bytes, float]:
        """(status, body, the Retry-After it asked for in seconds, 0 without one)."""
        headers = {"Accept": JSON} | ({"Content-Type": content_type} if body is not None else {})
        try:
            params = self._api.param_serialize(
                method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            response = self._api.call_api(*params, _request_timeout=timeout)
            raw = response.read()  # type: ignore[no-untyped-call]  # RESTResponse.read is unannotated
            retry_after = response.getheader("Retry-After")  # type: ignore[no-untyped-call]  # unannotated too
            return response.status, bytes(raw or b""), _retry_after(retry_after)
        except ApiException as exc:  # TLS and request-building failures arrive as status 0
            raise DCSError(f"{what}: {exc.reason}") from exc
        except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
            raise _Retryable(f"{what}: cannot connect: {exc}") from exc  # nothing was sent
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if idempotent and not isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise _Retryable(f"{what}: {type(exc).__name__}: {exc}") from exc
            raise DCSError(f"{what}: {type(exc).__name__}: {exc}") from exc


class _Retryable(DCSError):
    """A failure that changed nothing on the server: worth another try while time is left."""


def _retry_after(value: object) -> float:
    """Retry-After in seconds (the API server sends an integer); 0 when absent or not a number of seconds."""
    try:
        seconds = float(str(value))
    except ValueError:
        return 0.0  # an HTTP-date: the API server never sends one
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def _message(raw: bytes | None) -> str:
    """The Status message of an error answer, or a short excerpt of whatever came back."""
    try:
        status = json.loads(raw or b"")
        return str(status.get("message") or status.get("reason"))
    except (ValueError, AttributeError):
        return (raw or b"")[:200].decode(errors="replace")
