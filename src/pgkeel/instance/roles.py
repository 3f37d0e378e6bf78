"""The roles the agent keeps: the replication login peers use to stream, clone and rewind from this
server, and the superuser's password (a restored database carries the password of its source).

Passwords go to the server only as SCRAM verifiers computed client-side, so no cleartext reaches
a log line or pg_stat_activity.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    from pgkeel.instance.server import Instance

# What pg_rewind needs from its source when it connects as a non-superuser (PostgreSQL docs,
# pg_rewind "Notes"): granted explicitly to the replication role, nothing more.
REWIND_GRANTS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


def _verifier(inst: Instance, role: str, password_file: Path | None, what: str) -> sql.Literal:
    """The SCRAM verifier of the password in `password_file` for `role`, as an SQL literal."""
    if password_file is None:
        raise ValueError(f"the {what} password file is needed to set the password of {role}")
    password = password_file.read_text().strip()
    verifier = inst.connection().pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return sql.Literal(verifier.decode())


def create_replication_role(inst: Instance) -> None:
    """REPLICATION LOGIN with the replication password; may run again (ALTER) to reset it."""
    c = inst.config
    verifier = _verifier(inst, c.replication_user, c.replication_password_file, "replication")
    ident = sql.Identifier(c.replication_user)
    exists = inst.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (c.replication_user,))
    verb = "ALTER" if exists else "CREATE"
    stmt = sql.SQL(verb + " ROLE {} WITH LOGIN REPLICATION NOSUPERUSER PASSWORD {}").format(ident, verifier)
    with inst.connection().cursor() as cur:
        cur.execute(stmt)
        for fn in REWIND_GRANTS:
            cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION " + fn + " TO {}").format(ident))


def set_superuser_password(inst: Instance) -> None:
    """The superuser's password from this node's file."""
    c = inst.config
    verifier = _verifier(inst, c.superuser, c.superuser_password_file, "superuser")
    with inst.connection().cursor() as cur:
        cur.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(sql.Identifier(c.superuser), verifier))
