"""This node's lease fence: pgkeel_fence inside postgres, or the watchdog process where it cannot load.

Invariant: once armed, the deadline is enforced by something that does not share the agent loop's
fate — the postgres backends themselves (extension), or a separate process in its own session
(watchdog) — so a stalled, paused or dead agent cannot leave a primary that acknowledges writes
past its lease. The agent only arms it after a lease success and disarms it when it gives the lease up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pgkeel.ha.config import AgentConfig
from pgkeel.ha.records import FenceKind
from pgkeel.instance import CommandError, RunAs
from pgkeel.instance.fence import FenceFile, configured_preload, extension_library, fence_settings
from pgkeel.instance.watchdog import spawn

log = logging.getLogger("pgkeel.agent")


@dataclass
class NodeFence:
    """The LeaseFence the executor arms (pgkeel.ha.execute.LeaseFence)."""

    kind: FenceKind
    file: FenceFile | None
    postgres_settings: dict[str, str]  # what the agent adds to postgres' command line
    detail: str

    def arm_until(self, deadline: float) -> None:
        if self.file is not None:
            self.file.arm_until(deadline)

    def disarm(self) -> None:
        if self.file is not None:
            self.file.disarm()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def deadline_file_for(config: AgentConfig) -> Path:
    return config.fence_file or config.socket_dir / "pgkeel-fence"


def preload_libraries(config: AgentConfig, run_as: RunAs | None = None) -> str:
    """shared_preload_libraries as configured, to merge pgkeel_fence into.

    A data directory whose postgresql.auto.conf postgres cannot read (a hand edit) must not stop the
    agent before it runs: the agent then reads the shared config file alone, and postgres' own start
    fails, backs off and reports why (status `start.error`) until the file is fixed.
    """
    try:
        return configured_preload(config.bindir, config.config_file, config.datadir, run_as)
    except CommandError as exc:
        reason = (exc.output.strip().splitlines() or [str(exc)])[-1]
        log.warning(
            "postgres cannot read the configuration of %s (%s); shared_preload_libraries is taken from %s alone",
            config.datadir, reason, config.config_file,
        )
        return configured_preload(config.bindir, config.config_file, config.config_file.parent, run_as)


def prepare_fence(config: AgentConfig, run_as: RunAs | None = None) -> NodeFence:
    """Create (or reopen) the deadline file, disarmed, and choose the mechanism; say loudly if degraded."""
    path = deadline_file_for(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    fence_file = FenceFile.create(path, run_as)
    fence_file.disarm()  # a fresh agent holds no lease until it wins one
    library = extension_library(config.bindir)
    if library is not None:
        preload = preload_libraries(config, run_as)
        settings = fence_settings(True, path, preload)
        log.info("lease fence: pgkeel_fence (%s) refuses commits past the deadline in %s", library, path)
        return NodeFence(FenceKind.EXTENSION, fence_file, settings, f"pgkeel_fence, deadline file {path}")
    log.error(
        "lease fence DEGRADED: pgkeel_fence is not installed for %s (run scripts/build_fence.sh); "
        "a watchdog process will kill postgres at the deadline instead",
        config.bindir,
    )
    _ensure_watchdog(path, config.datadir, config.log_file.with_name("watchdog.log"))
    return NodeFence(FenceKind.WATCHDOG, fence_file, {}, f"watchdog process, deadline file {path}")


def _ensure_watchdog(path: Path, datadir: Path, log_file: Path) -> None:
    """One watchdog per deadline file: an earlier agent's watchdog (it outlives agents) is reused."""
    pidfile = path.with_name(path.name + ".watchdog.pid")
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"pgkeel.instance.watchdog" in cmdline and str(path).encode() in cmdline:
            return
    except (OSError, ValueError):
        pass
    child = spawn(path, datadir, log_file)
    pidfile.write_text(f"{child.pid}\n")

