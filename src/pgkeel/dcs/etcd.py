"""The many-machine store: etcd v3 through its JSON gateway.

Design:
- the leader key holds ``{"holder", "ttl"}`` and is attached to an etcd lease; etcd deletes it
  when the lease expires. Lease TTLs are whole seconds: a ttl is rounded *up* (0.3 s -> 1 s),
  and etcd may raise it further to its minimum, ceil(1.5 x election-timeout) (2 s with the
  default 1000 ms election timeout). ``Leader.ttl`` reports what etcd granted;
- the term is the mod_revision of a separate ``term`` key written in the same transaction as
  every acquisition or take-over and never otherwise, so it strictly increases across
  acquisitions (etcd revisions do) and stays constant across renewals, even a renewal that
  changes the TTL by moving the key onto a new lease (etcd refuses to delete and re-create one
  key in a single transaction, so the leader key's own revisions could not serve);
- renew = keepalive of the lease, *then* a transaction checking that the leader key is still
  attached to that lease: if it is, the lease (and so the key) lives ttl seconds from the
  keepalive, which happened after the call started;
- each member record has its own lease, kept alive by its next ``set_member``; a switchover
  request gets a lease of its own too (its ttl, rounded up the same way), so etcd deletes it;
- the leader history has no lease; ``set_history`` puts it in one transaction that compares the
  leader key's lease with the lease the writer's key is on (as renew does), so it lands only
  while that key, and so that holder's lease, exists;
- ``view()`` is one range request over ``/pgkeel/<scope>/``; ``sync_version`` is the sync key's
  mod_revision (0 when absent, which is also what etcd compares a missing key against).
Every operation shares one deadline of ``timeout`` seconds across all its requests.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from pgkeel.dcs.base import (
    DCS,
    ClusterView,
    DCSError,
    Leader,
    Member,
    Versioned,
    check_name,
    check_timeout,
    check_ttl,
    check_value_key,
)
from pgkeel.dcs.etcd_access import EtcdAccess
from pgkeel.dcs.etcd_client import GRPC_NOT_FOUND, EtcdClient, EtcdRPCError, as_int, b64, prefix_end, unb64
from pgkeel.dcs.keys import KeyLayout

KV = dict[str, Any]


def lease_seconds(ttl: float) -> int:
    """etcd leases are whole seconds: round up so a lease never ends before the asked ttl."""
    return max(1, math.ceil(check_ttl(ttl) - 1e-9))


def _cmp(key: str, target: str, field: str, value: str) -> dict[str, str]:
    return {"key": b64(key), "target": target, field: value, "result": "EQUAL"}


def _put(key: str, value: str, lease: int = 0) -> dict[str, Any]:
    request: dict[str, str] = {"key": b64(key), "value": b64(value)}
    if lease:
        request["lease"] = str(lease)
    return {"request_put": request}


def _delete(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


def _load(kv: KV) -> Any:
    try:
        return json.loads(unb64(kv.get("value", "")))
    except ValueError as exc:
        raise DCSError(f"etcd key {unb64(kv.get('key', ''))!r} holds garbage: {exc}") from exc


def _object(by_key: dict[str, KV], key: str) -> dict[str, Any] | None:
    """The JSON object stored at `key`, None when the key is absent."""
    kv = by_key.get(key)
    if kv is None:
        return None
    value = _load(kv)
    if not isinstance(value, dict):
        raise DCSError(f"etcd key {key!r} holds a non-object: {value!r}")
    return value


def _holder(kv: KV | None) -> str | None:
    if kv is None:
        return None
    value = _load(kv)
    holder = value.get("holder") if isinstance(value, dict) else None
    if not isinstance(holder, str):
        raise DCSError(f"etcd leader key holds garbage: {value!r}")
    return holder


class EtcdDCS(DCS):
    """DCS on an etcd v3 cluster; endpoints are tried in turn."""

    def __init__(
        self, endpoints: Sequence[str], scope: str, timeout: float = 1.0, access: EtcdAccess | None = None
    ) -> None:
        self._keys = KeyLayout(scope)
        self._timeout = check_timeout(timeout)
        self._client = EtcdClient(endpoints, self._timeout, access)
        self._lock = threading.RLock()
        self._leader_lease: dict[str, int] = {}  # holder name -> the lease its key is on
        self._member_lease: dict[str, int] = {}  # member name -> its record's lease
        self._asked: dict[int, int] = {}  # lease id -> TTL seconds we asked for
        self._switchover_lease: int | None = None  # the lease of the last request we put

    @property
    def endpoints(self) -> list[str]:
        return list(self._client.endpoints)

    # -- requests -------------------------------------------------------------------------

    def _deadline(self) -> float:
        return time.monotonic() + self._timeout

    def _call(self, method: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        return self._client.call(method, body, deadline)

    def _get(self, key: str, deadline: float) -> KV | None:
        kvs = self._call("kv/range", {"key": b64(key)}, deadline).get("kvs") or []
        return kvs[0] if kvs else None

    def _txn(
        self,
        compare: list[dict[str, str]],
        success: list[dict[str, Any]],
        deadline: float,
        failure: list[dict[str, Any]] | None = None,
    ) -> bool:
        body = {"compare": compare, "success": success, "failure": failure or []}
        return bool(self._call("kv/txn", body, deadline).get("succeeded", False))

    def _grant(self, seconds: int, deadline: float) -> tuple[int, int]:
        answer = self._call("lease/grant", {"TTL": str(seconds)}, deadline)
        lease, granted = as_int(answer, "ID"), as_int(answer, "TTL")
        if not lease or granted <= 0:
            raise DCSError(f"etcd lease grant failed: {answer!r}")
        self._asked[lease] = seconds
        return lease, granted

    def _keepalive(self, lease: int, deadline: float) -> bool:
        """True if the lease still existed and its TTL restarted now."""
        return as_int(self._call("lease/keepalive", {"ID": str(lease)}, deadline), "TTL") > 0

    def _revoke_quietly(self, lease: int, deadline: float) -> None:
        """Best effort: an unrevoked lease simply expires."""
        self._asked.pop(lease, None)
        if time.monotonic() >= deadline:
            return
        with contextlib.suppress(DCSError):
            self._call("lease/revoke", {"ID": str(lease)}, deadline)

    def _leader_value(self, holder: str, granted: int) -> str:
        return json.dumps({"holder": holder, "ttl": granted})

    # -- reading --------------------------------------------------------------------------

    def view(self) -> ClusterView:
        keys = self._keys
        answer = self._call(
            "kv/range", {"key": b64(keys.prefix), "range_end": prefix_end(keys.prefix)}, self._deadline()
        )
        by_key: dict[str, KV] = {unb64(kv.get("key", "")): kv for kv in answer.get("kvs") or []}
        members: dict[str, Member] = {}
        for key, kv in sorted(by_key.items()):
            if key.startswith(keys.members):
                data = _load(kv)
                if not isinstance(data, dict):
                    raise DCSError(f"etcd member {key!r} holds a non-object: {data!r}")
                name = key[len(keys.members) :]
                members[name] = Member(name, data)
        leader = None
        if (lkv := by_key.get(keys.leader)) is not None:
            value = _load(lkv)
            holder = _holder(lkv)
            term_kv = by_key.get(keys.term)
            term = as_int(term_kv, "mod_revision") if term_kv else as_int(lkv, "create_revision")
            try:
                ttl = float(value.get("ttl", 0))
            except (TypeError, ValueError) as exc:
                raise DCSError(f"etcd leader key holds a bad ttl: {value!r}") from exc
            leader = Leader(holder=str(holder), term=term, ttl=ttl)
        init = by_key.get(keys.initialize)
        sync = by_key.get(keys.sync)
        return ClusterView(
            leader=leader,
            members=members,
            initialize=unb64(init.get("value", "")) if init else None,
            sync=_object(by_key, keys.sync),
            sync_version=as_int(sync, "mod_revision") if sync else 0,
            switchover=_object(by_key, keys.switchover),
            history=_object(by_key, keys.history),
            values={
                key[len(keys.values) :]: Versioned(_object(by_key, key) or {}, as_int(kv, "mod_revision"))
                for key, kv in by_key.items()
                if key.startswith(keys.values)
            },
        )

    # -- the leader lease -----------------------------------------------------------------

    def acquire_leader(self, name: str, ttl: float) -> bool:
        check_name("name", name)
        seconds = lease_seconds(ttl)
        leader = self._keys.leader
        with self._lock:
            deadline = self._deadline()
            lease, granted = self._grant(seconds, deadline)
            try:
                won = self._txn(
                    [_cmp(leader, "CREATE", "create_revision", "0")],
                    [_put(leader, self._leader_value(name, granted), lease), _put(self._keys.term, name)],
                    deadline,
                )
            except DCSError:
                self._revoke_quietly(lease, deadline)  # it may have been applied: undo if we can
                raise
            if not won:
                self._revoke_quietly(lease, deadline)
                return False
            self._leader_lease[name] = lease
            return True

    def renew_leader(self, name: str, ttl: float) -> bool:
        check_name("name", name)
        seconds = lease_seconds(ttl)
        leader = self._keys.leader
        with self._lock:
            deadline = self._deadline()
            lease = self._leader_lease.pop(name, None)
            tried: set[int] = set()
            for _ in range(2):
                if lease is None:
                    # Another process of this node (or a take-over) may have put the key:
                    # adopt the lease the key is on if it names us.
                    kv = self._get(leader, deadline)
                    if kv is None or _holder(kv) != name:
                        return False
                    lease = as_int(kv, "lease")
                    self._asked.setdefault(lease, seconds)  # config is identical on every node
                if lease in tried:
                    return False
                tried.add(lease)
                if self._keepalive(lease, deadline) and self._txn(
                    [_cmp(leader, "LEASE", "lease", str(lease))], [], deadline
                ):
                    if self._asked.get(lease) != seconds:
                        return self._move_lease(name, lease, seconds, deadline)
                    self._leader_lease[name] = lease
                    return True
                self._asked.pop(lease, None)
                lease = None
            return False

    def _move_lease(self, name: str, old: int, seconds: int, deadline: float) -> bool:
        """Renew with a different TTL: put the key (not the term) onto a new lease."""
        leader = self._keys.leader
        lease, granted = self._grant(seconds, deadline)
        if not self._txn(
            [_cmp(leader, "LEASE", "lease", str(old))],
            [_put(leader, self._leader_value(name, granted), lease)],
            deadline,
        ):
            self._revoke_quietly(lease, deadline)
            return False
        self._revoke_quietly(old, deadline)
        self._leader_lease[name] = lease
        return True

    def release_leader(self, name: str) -> bool:
        check_name("name", name)
        leader = self._keys.leader
        with self._lock:
            deadline = self._deadline()
            kv = self._get(leader, deadline)
            if kv is None or _holder(kv) != name:
                return False
            if not self._txn(
                [_cmp(leader, "MOD", "mod_revision", str(as_int(kv, "mod_revision")))], [_delete(leader)], deadline
            ):
                return False
            self._leader_lease.pop(name, None)
            self._revoke_quietly(as_int(kv, "lease"), deadline)
            return True

    def take_over_leader(self, from_name: str, to_name: str, ttl: float) -> bool:
        check_name("from_name", from_name)
        check_name("to_name", to_name)
        seconds = lease_seconds(ttl)
        leader = self._keys.leader
        with self._lock:
            deadline = self._deadline()
            kv = self._get(leader, deadline)
            if kv is None or _holder(kv) != from_name:
                return False
            lease, granted = self._grant(seconds, deadline)
            try:
                won = self._txn(
                    [_cmp(leader, "MOD", "mod_revision", str(as_int(kv, "mod_revision")))],
                    [_put(leader, self._leader_value(to_name, granted), lease), _put(self._keys.term, to_name)],
                    deadline,
                )
            except DCSError:
                self._revoke_quietly(lease, deadline)
                raise
            if not won:
                self._revoke_quietly(lease, deadline)
                return False
            self._leader_lease.pop(from_name, None)
            self._leader_lease[to_name] = lease
            # The old holder's next renew then fails at its keepalive.
            self._revoke_quietly(as_int(kv, "lease"), deadline)
            return True

    # -- bootstrap ------------------------------------------------------------------------

    def initialize(self, value: str) -> bool:
        key = self._keys.initialize
        return self._txn([_cmp(key, "CREATE", "create_revision", "0")], [_put(key, value)], self._deadline())

    def set_initialize(self, expected: str, value: str) -> bool:
        key = self._keys.initialize
        return self._txn([_cmp(key, "VALUE", "value", b64(expected))], [_put(key, value)], self._deadline())

    def clear_initialize(self, expected: str) -> bool:
        key = self._keys.initialize
        return self._txn([_cmp(key, "VALUE", "value", b64(expected))], [_delete(key)], self._deadline())

    # -- members --------------------------------------------------------------------------

    def set_member(self, name: str, data: dict[str, Any], ttl: float) -> None:
        key = self._keys.member(name)
        seconds = lease_seconds(ttl)
        value = json.dumps(data, sort_keys=True)
        with self._lock:
            deadline = self._deadline()
            lease = self._member_lease.pop(name, None)
            if lease is not None and (self._asked.get(lease) != seconds or not self._keepalive(lease, deadline)):
                self._revoke_quietly(lease, deadline)
                lease = None
            for _ in range(2):
                if lease is None:
                    lease, _granted = self._grant(seconds, deadline)
                try:
                    self._call("kv/put", {"key": b64(key), "value": b64(value), "lease": str(lease)}, deadline)
                except EtcdRPCError as exc:
                    if exc.code != GRPC_NOT_FOUND:  # not "lease expired just now"
                        raise
                    self._asked.pop(lease, None)
                    lease = None
                    continue
                self._member_lease[name] = lease
                return
            raise DCSError(f"etcd: member lease for {name!r} vanished twice in a row")

    def delete_member(self, name: str) -> None:
        key = self._keys.member(name)
        with self._lock:
            deadline = self._deadline()
            self._call("kv/deleterange", {"key": b64(key)}, deadline)
            lease = self._member_lease.pop(name, None)
            if lease is not None:
                self._revoke_quietly(lease, deadline)

    # -- cluster state --------------------------------------------------------------------

    def set_sync(self, value: dict[str, Any], expected_version: int) -> bool:
        return self._versioned_cas(self._keys.sync, value, expected_version)

    def set_value(self, key: str, value: dict[str, Any], expected_version: int) -> bool:
        return self._versioned_cas(self._keys.value(check_value_key(key)), value, expected_version)

    def _versioned_cas(self, key: str, value: dict[str, Any], expected_version: int) -> bool:
        """Put `value` at `key` if its mod_revision is still `expected_version` (0: the key is absent)."""
        if expected_version < 0:
            return False
        return self._txn(
            [_cmp(key, "MOD", "mod_revision", str(expected_version))],
            [_put(key, json.dumps(value, sort_keys=True))],
            self._deadline(),
        )

    def set_switchover(self, value: dict[str, Any], ttl: float = 60.0) -> None:
        key = self._keys.switchover
        seconds = lease_seconds(ttl)
        encoded = json.dumps(value, sort_keys=True)
        with self._lock:
            deadline = self._deadline()
            lease, _granted = self._grant(seconds, deadline)
            try:
                self._call("kv/put", {"key": b64(key), "value": b64(encoded), "lease": str(lease)}, deadline)
            except DCSError:
                self._revoke_quietly(lease, deadline)  # applied or not, the request then ends at once
                raise
            previous, self._switchover_lease = self._switchover_lease, lease
            if previous is not None:
                self._revoke_quietly(previous, deadline)  # no key is on it any more

    def clear_switchover(self) -> None:
        with self._lock:
            deadline = self._deadline()
            self._call("kv/deleterange", {"key": b64(self._keys.switchover)}, deadline)
            lease, self._switchover_lease = self._switchover_lease, None
            if lease is not None:
                self._revoke_quietly(lease, deadline)

    # -- leader history -------------------------------------------------------------------

    def set_history(self, name: str, value: dict[str, Any]) -> bool:
        check_name("name", name)
        leader = self._keys.leader
        put = [_put(self._keys.history, json.dumps(value, sort_keys=True))]
        with self._lock:
            deadline = self._deadline()
            lease = self._leader_lease.get(name)
            if lease is not None and self._txn([_cmp(leader, "LEASE", "lease", str(lease))], put, deadline):
                return True
            # Not on the lease we know (or none known): another connection of this node may have
            # acquired or moved it. Adopt the lease the key is on if the key names us.
            kv = self._get(leader, deadline)
            if kv is None or _holder(kv) != name or as_int(kv, "lease") in (0, lease):
                return False
            current = as_int(kv, "lease")
            return self._txn([_cmp(leader, "LEASE", "lease", str(current))], put, deadline)

    def close(self) -> None:
        self._client.close()
