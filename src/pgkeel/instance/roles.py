"""The replication role: the one login peers use to stream, clone and rewind from this server."""

from __future__ import annotations

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


def create_replication_role(inst: Instance) -> None:
    """REPLICATION LOGIN with a SCRAM verifier computed client-side (no cleartext in logs)."""
    c = inst.config
    if c.replication_password_file is None:
        raise ValueError("the replication password file is needed to create the replication role")
    password = c.replication_password_file.read_text().strip()
    conn = inst.connection()
    verifier = conn.pgconn.encrypt_password(password.encode(), c.replication_user.encode(), b"scram-sha-256").decode()
    ident = sql.Identifier(c.replication_user)
    exists = inst.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (c.replication_user,))
    verb = "ALTER" if exists else "CREATE"
    stmt = sql.SQL(verb + " ROLE {} WITH LOGIN REPLICATION NOSUPERUSER PASSWORD {}").format(
        ident, sql.Literal(verifier)
    )
    with conn.cursor() as cur:
        cur.execute(stmt)
        for fn in REWIND_GRANTS:
            cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION " + fn + " TO {}").format(ident))
