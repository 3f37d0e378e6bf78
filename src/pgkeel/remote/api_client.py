"""Talking to the members' APIs from another machine: each URL in turn, every failure said in words.

Why each member in turn: any member answers reads (it reads the same store) and records requests
(the leader acts on them), so a dead member only costs its timeout. What is final and what is not:
no answer, a TLS failure or a 503 (that member lost the store) moves on to the next URL; a 401/403
(the token) or a refusal (409, 400, …) is the cluster's answer and is reported at once.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from pgkeel.remote.target import ApiAccess

TIMEOUT_SECONDS = 3.0  # a TLS handshake with a loaded member; a dead one costs this much per URL


class ApiError(RuntimeError):
    """No member answered, or the one that did refused; the message is one line naming what to do."""


def _why(exc: httpx.HTTPError, timeout: float) -> str:
    """An httpx failure as a person reads it (the class names mean nothing to them)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s"
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc.__cause__, ssl.SSLCertVerificationError):
        return "its certificate is not signed by --ca (give the cluster CA: ca.crt of a member's bundle)"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in text.lower() else f"cannot connect ({text})"
    return text


class ApiClient:
    """The members' APIs of one `ApiAccess`, over one connection pool, verified against its CA."""

    def __init__(self, access: ApiAccess, timeout: float = TIMEOUT_SECONDS) -> None:
        self.access = access
        self.timeout = timeout
        verify: ssl.SSLContext | bool = True
        if access.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(access.ca_file))
        self.http = httpx.Client(verify=verify, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _ask(self, method: str, url: str, path: str, **kwargs: Any) -> tuple[httpx.Response, Any] | str:
        """The response and its JSON body, or why there was none (one entry of what was tried)."""
        try:
            response = self.http.request(method, url + path, **kwargs)
            return response, response.json()
        except httpx.HTTPError as exc:
            return _why(exc, self.timeout)
        except ValueError:
            return f"answered {path} with something other than JSON: not a pgkeel API?"

    def get_one(self, url: str, path: str) -> dict[str, Any] | None:
        """One member's answer, or None when it gives none (the caller shows that member as unreachable)."""
        answer = self._ask("GET", url, path)
        if isinstance(answer, str):
            return None
        response, body = answer
        return body if response.status_code == 200 and isinstance(body, dict) else None

    def get_first(self, path: str) -> tuple[str, dict[str, Any]]:
        """(url, body) of the first member that answers GET `path` with 200; ApiError naming every try."""
        tried = []
        for url in self.access.urls:
            answer = self._ask("GET", url, path)
            if isinstance(answer, str):
                tried.append(f"{url} ({answer})")
                continue
            response, body = answer
            if response.status_code == 200 and isinstance(body, dict):
                return url, body
            said = body.get("error") if isinstance(body, dict) else None
            tried.append(f"{url} (HTTP {response.status_code}{': ' + said if said else ''})")
        raise ApiError(f"no member API answered {path}: {'; '.join(tried)}. Check that the agents run and that "
                       "this machine reaches their API port, or read through the store with --store")

    def _token(self, path: str) -> str:
        file = self.access.token_file
        if file is None:
            raise ApiError(f"{path.strip('/')} needs the cluster's API token: give --token-file FILE "
                           "(api-token in any member's bundle) or --secrets DIR")
        try:
            token = file.read_text().strip()
        except OSError as exc:
            raise ApiError(f"--token-file {file}: cannot read it ({exc.strerror}); give the api-token file of a "
                           "member's bundle") from None
        if not token:
            raise ApiError(f"--token-file {file} is empty: it must hold the cluster's API token (api-token)")
        return token

    def post_first(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the first member that takes it; ApiError for a refusal, the token, or nobody answering."""
        return self._post(self.access.urls, path, body)

    def post_to(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to one member's own agent (reinit: only that member can carry it out); ApiError as post_first."""
        return self._post((url,), path, body)

    def _post(self, urls: tuple[str, ...], path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token(path)}"}  # in the header only: never argv or a log
        tried = []
        for url in urls:
            answer = self._ask("POST", url, path, json=body, headers=headers)
            if isinstance(answer, str):
                tried.append(f"{url} ({answer})")
                continue
            response, data = answer
            said = data.get("error") if isinstance(data, dict) else None
            if response.status_code == 401:
                raise ApiError(f"{url} refused the API token (401): --token-file must hold the cluster's token, "
                               "the api-token file of any member's bundle from `pgkeel secrets init`")
            if response.status_code == 403:
                raise ApiError(f"{url} refused {path} (403: {said or 'forbidden'}); run that member with its "
                               "bundle's api-token (`pgkeel node run --secrets DIR`)")
            if response.status_code == 503:  # that member lost the store; another may still reach it
                tried.append(f"{url} (503: {said or 'unavailable'})")
                continue
            if response.status_code >= 400 or not isinstance(data, dict):
                raise ApiError(f"refused by {url}: {said or response.text.strip()}")
            return data
        raise ApiError(f"no member API took {path}: {'; '.join(tried)}. Check that the agents run and that this "
                       "machine reaches their API port")
