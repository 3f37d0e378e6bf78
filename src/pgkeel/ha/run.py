"""Process entry of one node agent: drop root, open the store, serve the API, loop until SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from types import FrameType

from pgkeel.dcs import DCSError, open_dcs
from pgkeel.ha.agent import Agent
from pgkeel.ha.config import AgentConfig
from pgkeel.instance import drop_privileges

log = logging.getLogger("pgkeel.agent")


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
    dcs = open_dcs(config.dcs_url, config.scope, timeout=config.dcs_timeout)
    agent = Agent(config, dcs)
    from pgkeel.api.server import ApiServer  # api imports ha; import here keeps ha free of api

    api = ApiServer(agent, config.api_host, config.api_port, token)
    api.start()

    def _terminate(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        agent.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        agent.run_forever()
    finally:
        leading = agent.view is not None and agent.view.leader is not None and agent.view.leader.holder == config.name
        agent.instance.stop("fast")
        if leading:
            with contextlib.suppress(DCSError):
                agent.dcs.release_leader(config.name)
        with contextlib.suppress(DCSError):
            agent.dcs.delete_member(config.name)
        api.stop()
        dcs.close()
        log.info("stopped")
    return 0
