"""A real ApiServer on 127.0.0.1 in front of a fake agent that records what the HTTP layer asks of it."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from pgkeel.api.server import ApiServer
from pgkeel.ha.plan_reinit import ReinitRefused
from pgkeel.ha.plan_restart import RestartRefused
from pgkeel.ha.status import NodeStatus, PostgresStatus

TOKEN = "t0ken-Of-The-Cluster_0123456789abcdef"
MEMBERS = ("n-0", "n-1", "n-2")


class FakeAgent:
    """A `pgkeel.api.server.Node`: a status, liveness, wake and switchover requests (no HA loop behind it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.switchovers: list[tuple[Any, bool]] = []
        self.wakes = 0
        self.paused: dict[str, Any] | None = None

    def status(self) -> NodeStatus:
        return NodeStatus(
            name="n-0",
            role="primary",
            leader="n-0",
            is_leader=True,
            dcs_ok=True,
            postgres=PostgresStatus(running=True, in_recovery=False, timeline=1, lsn=1234),
            rule="lead.serve",
            loop_duration_s=0.01,
        )

    def loop_alive(self) -> bool:
        return True

    def wake(self) -> None:
        with self.lock:
            self.wakes += 1

    def request_switchover(
        self, to: str | None, force: bool = False, leader: str | None = None, at: float | None = None
    ) -> dict[str, Any]:
        with self.lock:
            self.switchovers.append((to, force))
        if to is not None and to not in MEMBERS:
            raise ValueError(f"unknown member {to!r}")
        if to == "n-0":
            raise ValueError("n-0 is already the leader")
        return {"from": "n-0", "to": to, "force": force}

    def pause(self, until: float | None, reason: str | None, by: str | None) -> dict[str, Any]:
        with self.lock:
            self.paused = {"until": until, "reason": reason, "by": by}
            return dict(self.paused)

    def resume(self) -> bool:
        with self.lock:
            was, self.paused = self.paused is not None, None
            return was

    def history(self) -> list[dict[str, Any]]:
        return [{"time": 1.0, "kind": "failover", "leader": "n-0", "previous": "n-1", "timeline": 2, "lsn": 16}]

    def request_backup(self, kind: str, by: str | None) -> dict[str, Any]:
        return {"id": f"req-1-{kind}", "kind": kind, "at": 1.0, "by": by}

    def backups(self) -> dict[str, Any]:
        return {"seen": {}, "requests": [], "run": None, "results": []}

    def repository(self) -> dict[str, Any]:
        raise LookupError("this cluster has no spec.backup")

    def request_restart(self, in_place: bool = False) -> dict[str, Any]:
        if not in_place:  # this fake is the leader of three members
            raise RestartRefused("n-0 is the leader: switch over first")
        return {"member": "n-0", "request": 1, "in_place": in_place}

    def reload(self) -> dict[str, Any]:
        return {"member": "n-0", "reloaded": True}

    def cancel_switchover(self) -> dict[str, Any] | None:
        return None

    def request_reinit(self) -> dict[str, Any]:
        raise ReinitRefused("n-0 is the leader: its data is the cluster's")

    def calls(self) -> list[tuple[Any, bool]]:
        with self.lock:
            return list(self.switchovers)

    def reset(self) -> None:
        with self.lock:
            self.switchovers.clear()
            self.wakes = 0


class Running:
    def __init__(self, token: str | None) -> None:
        self.agent = FakeAgent()
        self.api = ApiServer(self.agent, "127.0.0.1", 0, token)
        self.port = int(self.api.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=5.0)
        self.api.start()

    def stop(self) -> None:
        self.http.close()
        self.api.stop()
