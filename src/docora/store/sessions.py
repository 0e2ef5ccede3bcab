"""Operator console sessions: one row per login, found by the digest of the cookie's id."""

from __future__ import annotations

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row


class SessionRow(msgspec.Struct, frozen=True):
    username: str
    csrf_token: str


INSERT_SESSION = """
INSERT INTO admin_sessions (id_digest, username, csrf_token) VALUES (%s, %s, %s)
"""

# One statement finds a live session and records that it was used (idle expiry).
TOUCH_SESSION = """
UPDATE admin_sessions SET last_seen_at = now()
WHERE id_digest = %(digest)s
  AND last_seen_at > now() - %(idle_s)s * interval '1 second'
RETURNING username, csrf_token
"""

DELETE_SESSION = "DELETE FROM admin_sessions WHERE id_digest = %s"

PURGE_EXPIRED = """
DELETE FROM admin_sessions WHERE last_seen_at <= now() - %s * interval '1 second'
"""


async def create_session(
    conn: AsyncConnection, digest: bytes, username: str, csrf_token: str
) -> None:
    await conn.execute(INSERT_SESSION, (digest, username, csrf_token))


async def touch_session(conn: AsyncConnection, digest: bytes, idle_s: int) -> SessionRow | None:
    async with conn.cursor(row_factory=class_row(SessionRow)) as cur:
        await cur.execute(TOUCH_SESSION, {"digest": digest, "idle_s": idle_s})
        return await cur.fetchone()


async def delete_session(conn: AsyncConnection, digest: bytes) -> None:
    await conn.execute(DELETE_SESSION, (digest,))


async def purge_expired(conn: AsyncConnection, idle_s: int) -> None:
    await conn.execute(PURGE_EXPIRED, (idle_s,))
