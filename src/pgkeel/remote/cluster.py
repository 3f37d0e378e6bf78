"""A cluster on other machines, as `pgkeel status | switchover | failover | pause | reinit | history` drive it.

Which source first: the members' APIs, then the store. An API answers with everything the local
table shows (a member's own lag, pending restart, last error) and is the only way to request a
switchover (the member checks the request against the store and the token guards it); the store
needs no agent at all, so reads fall back to it when no API answers, and `--store` alone reads
it directly. Requests never go to the store directly: that would skip both the checks and the token.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from pgkeel.api.cluster import decode_cluster
from pgkeel.dcs import DCS, DCSError, open_dcs
from pgkeel.ha.backup_record import wait_for_result
from pgkeel.ha.maintenance import read_events
from pgkeel.ha.records import ClusterState
from pgkeel.ha.status import NodeStatus, parse_status
from pgkeel.remote.api_client import TIMEOUT_SECONDS, ApiClient, ApiError
from pgkeel.remote.rows import cluster_view
from pgkeel.remote.target import StoreAccess, Target

if TYPE_CHECKING:
    from pgkeel.backup.plan import Result

T = TypeVar("T")
POLL_SECONDS = 0.5  # between status rounds while waiting for a new leader: each round is one GET per member


class RemoteError(RuntimeError):
    """Nothing answered, or the cluster refused; one line saying what was tried and what to do."""


class RemoteCluster:
    def __init__(self, target: Target, timeout: float = TIMEOUT_SECONDS) -> None:
        self.target = target
        self.timeout = timeout
        self.api = ApiClient(target.api, timeout) if target.api is not None else None

    def close(self) -> None:
        if self.api is not None:
            self.api.close()

    # --- reads: the APIs first, the store when none answers ----------------------------------------
    def status(self) -> dict[str, Any]:
        """The cluster as `pgkeel status` shows it; RemoteError when neither an API nor the store answered."""
        return self._read(self._status_from_api, self._status_from_store)

    def history(self) -> list[dict[str, Any]]:
        """Every recorded change of primary, oldest first."""
        return self._read(self._history_from_api, self._history_from_store)

    def _read(self, from_api: Callable[[ApiClient], T], from_store: Callable[[StoreAccess], T]) -> T:
        failures = []
        if self.api is not None:
            try:
                return from_api(self.api)
            except ApiError as exc:
                failures.append(str(exc))
        if self.target.store is not None:
            try:
                return from_store(self.target.store)
            except RemoteError as exc:
                failures.append(str(exc))
        raise RemoteError(" / ".join(failures))

    def _status_from_api(self, api: ApiClient) -> dict[str, Any]:
        url, body = api.get_first("/cluster")
        state = decode_cluster(body)
        urls = {n: r.api_url for n, r in state.members.items() if r.api_url}
        with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:  # a dead member costs one timeout, not N
            answers = dict(zip(urls, pool.map(lambda u: api.get_one(u, "/status"), urls.values()), strict=True))
        statuses: dict[str, NodeStatus | None] = {n: parse_status(answers.get(n)) for n in state.members}
        silent = {n: f"API {urls.get(n) or '(none published)'} did not answer"
                  for n, s in statuses.items() if s is None}
        name = self.target.name or next((s.scope for s in statuses.values() if s is not None and s.scope), "?")
        return cluster_view(name, self.target.members, state, statuses, silent, f"api {url}")

    def _open_store(self, store: StoreAccess) -> DCS:
        try:
            return open_dcs(store.url, store.scope, timeout=self.timeout, etcd=store.etcd)
        except ValueError as exc:
            raise RemoteError(f"--store {store.url}: {exc}") from None

    def _store_error(self, store: StoreAccess, exc: DCSError) -> RemoteError:
        return RemoteError(f"cannot read the store {store.url}: {exc}. Check that etcd listens there, that this "
                           "machine reaches it, --store-ca and --store-user/--store-password-file")

    def _status_from_store(self, store: StoreAccess) -> dict[str, Any]:
        dcs = self._open_store(store)
        try:
            state = ClusterState.decode(dcs.view())
        except DCSError as exc:
            raise self._store_error(store, exc) from None
        finally:
            dcs.close()
        return cluster_view(store.scope, self.target.members, state, {}, {}, f"store {store.url}")

    def _history_from_api(self, api: ApiClient) -> list[dict[str, Any]]:
        _, body = api.get_first("/history")
        events = body.get("events")
        if not isinstance(events, list):
            raise ApiError("the member's /history has no list of events: is it a pgkeel agent?")
        return events

    def _history_from_store(self, store: StoreAccess) -> list[dict[str, Any]]:
        dcs = self._open_store(store)
        try:
            return [event.to_json() for event in read_events(dcs)]
        except DCSError as exc:
            raise self._store_error(store, exc) from None
        finally:
            dcs.close()

    # --- requests: through a member's API only -------------------------------------------------------
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.api is None:
            raise RemoteError(f"{path.strip('/')} goes through a member's API (it checks the request and the "
                              "token): give --api https://HOST:8008 with --ca and --token-file, or --secrets DIR")
        try:
            return self.api.post_first(path, body)
        except ApiError as exc:
            raise RemoteError(str(exc)) from None

    def request_switchover(self, to: str | None, at: float | None = None) -> dict[str, Any]:
        """The request as recorded ({from, to, force[, at]}); RemoteError with the member's reason if refused."""
        body: dict[str, Any] = {"to": to} if to else {}
        if at is not None:
            body["at"] = at
        accepted: dict[str, Any] = self._post("/switchover", body)["accepted"]
        return accepted

    def cancel_switchover(self) -> dict[str, Any] | None:
        """Remove the pending (scheduled) switchover: the request removed, or None when there was none."""
        cancelled: dict[str, Any] | None = self._post("/switchover/cancel", {}).get("cancelled")
        return cancelled

    def pause(self, until: float | None, reason: str | None = None) -> dict[str, Any]:
        """Maintenance mode until `until` (epoch seconds) or resumed, as the member recorded it."""
        body: dict[str, Any] = {"by": f"pgkeel pause ({socket.gethostname()})"}
        if until is not None:
            body["until"] = until
        if reason:
            body["reason"] = reason
        paused: dict[str, Any] = self._post("/pause", body)["paused"]
        return paused

    def resume(self) -> bool:
        """Leave maintenance mode; False when the cluster was not paused."""
        return bool(self._post("/resume", {}).get("was_paused"))

    # --- one member's own agent: reinit ---------------------------------------------------------------
    def _member_url(self, name: str) -> str:
        """Member `name`'s API as its record publishes it; RemoteError naming the members for another name."""
        if self.api is None:
            raise RemoteError("reinit goes through the member's own API: give --api https://HOST:8008 with --ca and "
                              "--token-file, or --secrets DIR")
        try:
            _, body = self.api.get_first("/cluster")
        except ApiError as exc:
            raise RemoteError(str(exc)) from None
        state = decode_cluster(body)
        members = list(dict.fromkeys([*self.target.members, *sorted(state.members)]))
        if name not in members:
            raise RemoteError(f"unknown member {name!r}; members are {', '.join(members) or '(none recorded)'}")
        record = state.members.get(name)
        if record is None or record.api_url is None:
            raise RemoteError(f"{name} has no member record with an API address (its agent is not running)")
        return record.api_url

    def member_status(self, name: str) -> dict[str, Any] | None:
        """Member `name`'s own /status, or None when it does not answer."""
        assert self.api is not None
        try:
            return self.api.get_one(self._member_url(name), "/status")
        except RemoteError:
            return None

    def request_reinit(self, name: str) -> dict[str, Any]:
        """Ask member `name`'s own agent to re-clone it from the leader; RemoteError with its reason if refused."""
        url = self._member_url(name)
        assert self.api is not None
        try:
            data = self.api.post_to(url, "/reinit", {})
        except ApiError as exc:
            raise RemoteError(str(exc)) from None
        accepted: dict[str, Any] = data["accepted"]
        return accepted

    def failover(self, to: str, force: bool = False) -> dict[str, Any]:
        """The member's answer: {"accepted": request}."""
        return self._post("/failover", {"to": to, "force": force})

    def backup_now(self, kind: str, timeout: float, progress: Callable[[str], None] | None = None) -> Result:
        """Queue a backup through a member's API and wait for its result (polling GET /backups)."""
        accepted = self._post("/backup", {"kind": kind, "by": f"pgkeel backup now ({socket.gethostname()})"})
        api = self.api
        assert api is not None  # _post refused otherwise

        def read() -> dict[str, Any]:
            try:
                return api.get_first("/backups")[1]
            except ApiError as exc:
                raise RemoteError(str(exc)) from None

        return wait_for_result(read, str(accepted["accepted"]["id"]), timeout, progress)

    def repository(self) -> dict[str, Any]:
        """The backups in the cluster's repository, as a member's GET /backups/repository reads them."""
        if self.api is None:
            raise RemoteError("the repository is read through a member's API: give --api https://HOST:8008 "
                              "(with --ca), or -f FILE")
        try:
            return self.api.get_first("/backups/repository")[1]
        except ApiError as exc:
            raise RemoteError(str(exc)) from None

    def wait_for_leader(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Status once the request's target (or, without one, another member than its source) is the one
        primary; TimeoutError naming every member's state otherwise."""
        target, source = request.get("to"), request.get("from")
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {"leader": None, "members": []}
        while time.monotonic() < deadline:
            try:
                status = self.status()
            except RemoteError:  # the old primary's API may be restarting postgres: ask again
                time.sleep(POLL_SECONDS)
                continue
            primaries = [m["name"] for m in status["members"] if m["role"] == "primary"]
            if len(primaries) == 1 and status["leader"] == primaries[0] and (
                primaries[0] == target if target else primaries[0] != source
            ):
                return status
            time.sleep(POLL_SECONDS)
        summary = ", ".join(f"{m['name']}={m['role']}/{m['state']}" for m in status["members"])
        raise TimeoutError(f"{target or 'another member'} is not the leader after {timeout:g}s (leader: "
                           f"{status['leader'] or 'none'}; {summary}); the leader drops a request it cannot carry "
                           "out: see the agents' logs (journalctl -u pgkeel-CLUSTER)")
