"""Security of a real local cluster: the control API refuses strangers, passwords appear nowhere but in
secrets/, the replication role holds only what it needs, and password-less or md5 logins are refused."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from clients import leader_member

from pgkeel.instance.server import REWIND_GRANTS

pytestmark = pytest.mark.e2e


def _members(cluster) -> list[str]:  # type: ignore[no-untyped-def]
    return [m["name"] for m in cluster.status()["members"]]


def _tcp(cluster, name: str, **kwargs) -> psycopg.Connection:  # type: ignore[no-untyped-def]
    port = cluster.layout.load_state()["pg_ports"][name]
    params = {"host": "127.0.0.1", "port": port, "dbname": "postgres", "connect_timeout": 3} | kwargs
    return psycopg.connect(**params, autocommit=True)


def test_unauthenticated_switchover_is_refused_and_changes_nothing(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    before = cluster.status()
    leader = before["leader"]
    other = next(n for n in _members(cluster) if n != leader)
    token = cluster.token()
    refused = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {token[:-1]}"},
               {"Authorization": f"Basic {token}"}, {"Authorization": token}, {"Authorization": "Bearer"}]
    for name in _members(cluster):
        url = cluster.api_url(name)
        for headers in refused:
            for path, body in (("/switchover", {"to": other}), ("/switchover", {}),
                               ("/failover", {"to": other, "force": True})):
                response = httpx.post(url + path, json=body, headers=headers, timeout=3.0)
                assert response.status_code == 401, (name, path, headers, response.text)
        # the token in the query string or a body field is not a token either
        response = httpx.post(f"{url}/switchover?token={token}", json={"to": other, "token": token}, timeout=3.0)
        assert response.status_code == 401
    time.sleep(5)
    after = cluster.status()
    assert after["leader"] == leader
    assert leader_member(cluster)["role"] == "primary"
    assert [(m["name"], m["role"], m["timeline"]) for m in after["members"]] == [
        (m["name"], m["role"], m["timeline"]) for m in before["members"]]
    for name in _members(cluster):
        snap = httpx.get(cluster.api_url(name) + "/status", timeout=3.0).json()
        assert snap["leader"] == leader
        assert not any("switchover" in a["kind"] or "promote" in a["kind"] or "demote" in a["kind"]
                       for a in snap["actions"]), snap["actions"]


class _PsSampler(threading.Thread):
    """Every process's command line, sampled every 20 ms while the cluster works."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False).stdout
            self.samples.append(out)
            self.stop.wait(0.02)


def test_passwords_appear_nowhere_but_in_secrets(make_cluster) -> None:  # type: ignore[no-untyped-def]
    sampler = _PsSampler()
    sampler.start()
    try:
        cluster = make_cluster()
        root: Path = cluster.layout.root
        secrets = root / "secrets"
        passwords = {role: (secrets / f"{role}.password").read_text().strip() for role in ("superuser", "replication")}
        assert all(len(p) >= 24 for p in passwords.values())
        assert passwords["superuser"] != passwords["replication"]
        # a switchover exercises demotion, pg_rewind/pg_basebackup and new primary_conninfo
        cluster.switchover(wait=60)
        cluster.wait_healthy(timeout=60)
        responses = []
        for name in _members(cluster):
            for path in ("/status", "/metrics", "/openapi.json", "/health", "/primary", "/replica", "/liveness"):
                responses.append((f"{name} GET {path}", httpx.get(cluster.api_url(name) + path, timeout=3.0).text))
    finally:
        sampler.stop.set()
        sampler.join(5)
    assert len(sampler.samples) > 20
    assert any("postgres -D" in s for s in sampler.samples)

    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for path in secrets.iterdir():
        if path.suffix not in (".crt", ".pem"):  # certificates are public; keys, passwords and tokens are not
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for name in ("superuser.password", "replication.password", "pgpass", "api.token"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name

    files = [p for p in root.rglob("*") if p.is_file() and secrets not in p.parents]
    names = {p.name for p in files}
    assert {"agent.json", "agent.log", "postgres.log", "postgresql.conf", "pg_hba.conf", "state.json",
            "cluster.yaml", "postgresql.auto.conf"} <= names, names
    found = []
    for role, password in passwords.items():
        needle = password.encode()
        for path in files:
            try:
                data = path.read_bytes()
            except OSError:
                continue  # a file removed while we walked (WAL recycling, pid files)
            if needle in data:
                found.append(f"{role} password in {path.relative_to(root)}")
        found += [f"{role} password in {what}" for what, text in responses if password in text]
        if any(password in sample for sample in sampler.samples):
            found.append(f"{role} password in `ps -eo args`")
        found += [f"{role} password in the environment of {pid}" for pid in _cluster_pids(cluster)
                  if _environ_has(pid, needle)]
    assert not found, found
    print(f"secret grep: {len(files)} files, {len(responses)} API responses, {len(sampler.samples)} ps samples")


def _cluster_pids(cluster) -> list[int]:  # type: ignore[no-untyped-def]
    pids = []
    for name in _members(cluster):
        pids += [p for p in (cluster.agent_pid(name), cluster.postgres_pid(name)) if p]
    return pids


def _environ_has(pid: int, needle: bytes) -> bool:
    """Passwords may travel through the environment to child tools; the long-lived processes hold none."""
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def test_replication_role_has_replication_and_login_and_only_the_rewind_grants(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    user = cluster.cluster().spec.users.replication
    for name in _members(cluster):  # the catalogue is replicated: every node agrees
        with psycopg.connect(cluster.node_dsn(name), autocommit=True) as conn:
            row = conn.execute(
                "SELECT rolsuper, rolreplication, rolcanlogin, rolcreaterole, rolcreatedb, rolbypassrls, rolinherit"
                " FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            assert row is not None and row[:3] == (False, True, True), row
            assert row[3:6] == (False, False, False), row
            granted = {r[0] for r in conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p, aclexplode(p.proacl) a "
                "WHERE a.grantee = %s::regrole AND a.privilege_type = 'EXECUTE'", (user,))}
            expected = {conn.execute("SELECT %s::regprocedure::text", (fn,)).fetchone()[0] for fn in REWIND_GRANTS}
            assert granted == expected, granted ^ expected
            assert len(expected) == 4
            assert conn.execute("SELECT count(*) FROM pg_auth_members WHERE member = %s::regrole",
                                (user,)).fetchone() == (0,), "the replication role is a member of another role"
            assert conn.execute("SELECT count(*) FROM information_schema.table_privileges WHERE grantee = %s",
                                (user,)).fetchone() == (0,)
            for fn in REWIND_GRANTS:
                assert conn.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (user, fn)).fetchone() == (
                    True,)
            assert conn.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = %s",
                                (user,)).fetchone() == (True,)


def test_passwordless_and_md5_clients_are_refused(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cluster = make_cluster()
    leader = leader_member(cluster)["name"]
    users = cluster.cluster().spec.users
    empty = tmp_path / "pgpass"
    empty.write_text("")
    empty.chmod(0o600)
    saved = {k: os.environ.pop(k) for k in ("PGPASSWORD", "PGPASSFILE") if k in os.environ}
    try:
        for name in _members(cluster):
            for user in (users.superuser, users.replication):
                with pytest.raises(psycopg.OperationalError, match="password"):
                    _tcp(cluster, name, user=user, passfile=str(empty))
                with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                    _tcp(cluster, name, user=user, password="not-the-password", passfile=str(empty))
        with psycopg.connect(cluster.node_dsn(leader), autocommit=True) as conn:
            conn.execute("SET password_encryption = 'md5'")
            conn.execute("CREATE ROLE m LOGIN PASSWORD 'x-Secret-1'")
            conn.execute("RESET password_encryption")
            conn.execute("CREATE ROLE s LOGIN PASSWORD 'x-Secret-1'")
            stored = dict(conn.execute("SELECT rolname, left(rolpassword, 6) FROM pg_authid "
                                       "WHERE rolname IN ('m', 's')").fetchall())
        assert stored == {"m": "md5" + stored["m"][3:], "s": "SCRAM-"}
        assert stored["m"].startswith("md5")
        # control: the same password stored as SCRAM logs in over TCP
        with _tcp(cluster, leader, user="s", password="x-Secret-1", passfile=str(empty)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("s",)
        # the md5-stored one cannot: scram-sha-256 in pg_hba refuses md5 verifiers
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _tcp(cluster, leader, user="m", password="x-Secret-1", passfile=str(empty))
    finally:
        os.environ.update(saved)
