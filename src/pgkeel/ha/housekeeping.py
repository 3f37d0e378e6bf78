"""Housekeeping between HA decisions: the node's TLS certificate, changes to its config files, the archive backlog.

Invariant: nothing here changes a node's role or the lease; it only keeps postgres' certificate
and settings current (a reload, never a restart behind anyone's back), so it runs outside decide().
"""

from __future__ import annotations

import contextlib
import logging
import time

import psycopg

from pgkeel.backup.archive_watch import watch_for
from pgkeel.dcs import DCS
from pgkeel.ha.backup_record import StoredGap
from pgkeel.ha.config import AgentConfig
from pgkeel.instance import Instance
from pgkeel.tls import SERVER_CERT, CertificateAuthority, ensure_server_certificate, inspect

log = logging.getLogger("pgkeel.agent")


class Housekeeping:
    def __init__(self, config: AgentConfig, instance: Instance, dcs: DCS | None = None) -> None:
        self.config = config
        self.instance = instance
        self.cert_not_after: str | None = None  # ISO expiry of this node's certificate, for /status
        self._cert_checked: float | None = None  # monotonic time of the last certificate check
        self._config_seen: tuple[float, ...] | None = None  # fingerprint of the config files last loaded
        self._check_pending_at: float | None = None  # when to read pending_restart after a reload
        # WAL waiting for the archive against spec.backup.archive's bound (pgkeel.backup.archive_watch)
        # an open gap is kept in the store, so a restarted agent or the next primary still reports it
        self.archive = watch_for(instance, config.config_file.parent, config.scope, config.archive_max_backlog,
                                 config.archive_on_backlog_full, StoredGap(dcs) if dcs is not None else None)

    def run(self) -> None:
        self.maintain_certificate()
        self.follow_config_changes()
        self.archive.run()

    def _config_fingerprint(self) -> tuple[float, ...]:
        files = [self.config.config_file, self.config.config_file.parent / "pg_hba.conf"]
        stamps: list[float] = []
        for path in files:
            try:
                stat = path.stat()
                stamps += [stat.st_mtime, float(stat.st_size), float(stat.st_ino)]
            except OSError:
                stamps += [0.0, 0.0, 0.0]
        return tuple(stamps)

    def follow_config_changes(self) -> None:
        """A changed postgresql.conf / pg_hba.conf (e.g. a ConfigMap update) is reloaded at once;
        parameters that need a restart are reported in /status."""
        fingerprint = self._config_fingerprint()
        if self._config_seen is None:
            self._config_seen = fingerprint
            return
        if fingerprint != self._config_seen and self.instance.is_running():
            self._config_seen = fingerprint
            log.info("configuration files changed: reloading postgres")
            self.instance.reload()
            self._check_pending_at = time.monotonic() + 1.0  # the reload is asynchronous
        if self._check_pending_at is not None and time.monotonic() >= self._check_pending_at:
            self._check_pending_at = None
            with contextlib.suppress(psycopg.Error):
                rows = self.instance.query(
                    "SELECT name FROM pg_settings WHERE pending_restart AND source <> 'command line' ORDER BY name"
                )
                pending = [str(r[0]) for r in rows]  # /status reads its own list every loop (instance.status)
                if pending:
                    log.warning("changed parameters need a restart: %s", ", ".join(pending))

    def reload_now(self) -> None:
        """Reload at once (asked through the API), and read pending_restart a second later as after any reload."""
        self._config_seen = self._config_fingerprint()
        self.instance.reload()
        self._check_pending_at = time.monotonic() + 1.0

    def maintain_certificate(self, every: float = 60.0) -> None:
        """Issue this node's certificate before postgres first starts; renew it before expiry, then reload."""
        c = self.config
        if not c.tls_enabled or c.tls_dir is None:
            return
        now = time.monotonic()
        if self._cert_checked is not None and now - self._cert_checked < every:
            return
        self._cert_checked = now
        if c.ca_file is not None and c.ca_key_file is not None and c.ca_key_file.exists():
            try:
                ca = CertificateAuthority.load(c.ca_file, c.ca_key_file)
                names = c.tls_names or [c.advertise_host]
                if ensure_server_certificate(c.tls_dir, ca, c.name, names, c.renew_before_days, c.certificate_days):
                    log.info("issued a server certificate for %s", ", ".join(names))
                    if self.instance.is_running():
                        self.instance.reload()  # PostgreSQL re-reads its certificate on reload
            except (OSError, ValueError) as exc:
                log.error("cannot issue the server certificate: %s", exc)
        info = inspect(c.tls_dir / SERVER_CERT)
        self.cert_not_after = info.not_after.isoformat() if info else None
