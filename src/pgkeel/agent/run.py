"""Process entry of one node agent: drop root, open the store, prepare the fence, serve the API,
loop until SIGTERM, then (on Kubernetes, as leader) switch over, stop postgres and give the lease back."""

from __future__ import annotations

import logging
import signal
import ssl
import sys
from types import FrameType

from pgkeel.agent.backups import BackupScheduler
from pgkeel.agent.drain import hand_over_before_stop
from pgkeel.agent.roll import Roller
from pgkeel.api.server import ApiServer
from pgkeel.dcs import open_dcs
from pgkeel.ha.config import AgentConfig
from pgkeel.ha.fencing import prepare_fence
from pgkeel.ha.loop import Agent
from pgkeel.instance import RunAs, drop_privileges

log = logging.getLogger("pgkeel.agent")


def api_tls(config: AgentConfig) -> ssl.SSLContext | None:
    """The API's server TLS context, from the node's certificate; None serves plain HTTP."""
    if config.api_cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.api_cert_file), str(config.api_key_file or config.api_cert_file))
    return context


def run_agent(config: AgentConfig) -> int:
    """Run until SIGTERM/SIGINT; on shutdown stop postgres and give the lease back at once."""
    drop_privileges()
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {config.name} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    token = config.api_token_file.read_text().strip() if config.api_token_file else None
    dcs = open_dcs(config.dcs_url, config.scope, timeout=config.ha.dcs_timeout, etcd=config.etcd)
    fence = prepare_fence(config, RunAs.for_current_process())
    agent = Agent(config, dcs, fence)
    api = ApiServer(agent, config.api_host, config.api_port, token, api_tls(config), store=dcs)
    api.start()
    pod = dcs.own_pod(config.name)  # on Kubernetes: rolling updates and drains are this agent's to carry out
    roller = Roller(agent, pod).start() if pod is not None else None
    scheduler = BackupScheduler(agent, config.backup).start() if config.backup is not None else None
    if scheduler is not None:
        agent.backup_status = lambda: scheduler.status

    def _terminate(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        agent.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        agent.run_forever()
    finally:
        if roller is not None:
            roller.stop()
        if scheduler is not None:
            scheduler.stop()  # a backup under way keeps its pgbackrest; its run stops beating and is retaken
        if pod is not None:
            try:  # SIGTERM on Kubernetes: the pod is going away, so the leader switches over first
                hand_over_before_stop(agent, pod)
            except Exception:  # whatever happened, the shutdown below still stops postgres and releases
                log.exception("hand-over before stopping failed")
        agent.shutdown()
        api.stop()
        dcs.close()
        fence.close()
        log.info("stopped")
    return 0
