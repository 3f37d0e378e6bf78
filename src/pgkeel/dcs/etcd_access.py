"""How a client proves itself to etcd: TLS (CA, optional client certificate) and username/password.

etcd v3 auth over the JSON gateway: POST /v3/auth/authenticate {name, password} returns a token
that every later request carries as the `Authorization` header (no "Bearer"). Simple tokens expire
(etcd's --auth-token-ttl, 300 s idle by default) and a member restart forgets them: a request
refused as unauthenticated was not applied, so it is safe to authenticate again and resend it.
The password is read from its file at each authentication, so rotating it needs no restart.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

GRPC_UNAUTHENTICATED = 16
# "etcdserver: invalid auth token" is UNAUTHENTICATED; "revision of auth store is old" (a token from
# before a user/role change) arrives as INVALID_ARGUMENT with that text: both mean authenticate again.
STALE_TOKEN_MESSAGES = ("invalid auth token", "auth store is old", "user name is empty")


@dataclass(frozen=True)
class EtcdAccess:
    """Files a client needs to reach a secured etcd; every field optional (None = plain, anonymous)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    user: str | None = None
    password_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (CA and client certificate), None without a CA."""
        if self.ca_file is None:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def credentials(self) -> tuple[str, str] | None:
        """(user, password) for auth/authenticate; None when auth is off. The password is its file's first line."""
        if self.user is None or self.password_file is None:
            return None
        lines = self.password_file.read_text().splitlines()
        password = lines[0].strip() if lines else ""
        if not password:
            raise ValueError(f"{self.password_file} is empty: write the etcd password of {self.user!r} into it")
        return self.user, password


def stale_token(code: int, message: str) -> bool:
    """Did etcd refuse the request because our token is missing, expired or from an older auth store?"""
    return code == GRPC_UNAUTHENTICATED or any(text in message for text in STALE_TOKEN_MESSAGES)
