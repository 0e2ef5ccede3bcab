"""The apps table: client apps, their token digests and encrypted signing keys."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row


class AppRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    base_url: str
    email: str
    website: str | None
    description: str | None
    client_auth_key_enc: bytes
    delivery_concurrency: int
    created_at: datetime
    updated_at: datetime


_COLUMNS = """id, name, base_url, email, website, description, client_auth_key_enc,
    delivery_concurrency, created_at, updated_at"""

INSERT_APP = f"""
INSERT INTO apps (id, name, base_url, email, website, description, token_digest,
                  client_auth_key_enc, delivery_concurrency)
VALUES (%(id)s, %(name)s, %(base_url)s, %(email)s, %(website)s, %(description)s,
        %(token_digest)s, %(client_auth_key_enc)s, %(delivery_concurrency)s)
RETURNING {_COLUMNS}
"""

# One indexed lookup; the caller still compares digests in constant time.
SELECT_BY_TOKEN_DIGEST = f"SELECT {_COLUMNS}, token_digest FROM apps WHERE token_digest = %s"

SELECT_BY_ID = f"SELECT {_COLUMNS} FROM apps WHERE id = %s"

SELECT_ALL = f"SELECT {_COLUMNS} FROM apps ORDER BY created_at, id"

UPDATE_APP = f"""
UPDATE apps SET
    base_url = coalesce(%(base_url)s, base_url),
    delivery_concurrency = coalesce(%(delivery_concurrency)s, delivery_concurrency),
    client_auth_key_enc = coalesce(%(client_auth_key_enc)s, client_auth_key_enc),
    updated_at = now()
WHERE id = %(id)s
RETURNING {_COLUMNS}
"""


async def insert_app(conn: AsyncConnection, **values) -> AppRow:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(INSERT_APP, values)
        row = await cur.fetchone()
    assert row is not None
    return row


async def find_by_token_digest(conn: AsyncConnection, digest: bytes) -> tuple[AppRow, bytes] | None:
    async with conn.cursor() as cur:
        await cur.execute(SELECT_BY_TOKEN_DIGEST, (digest,))
        row = await cur.fetchone()
    if row is None:
        return None
    *fields, stored_digest = row
    return AppRow(*fields), bytes(stored_digest)


async def get_app(conn: AsyncConnection, app_id: str) -> AppRow | None:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(SELECT_BY_ID, (app_id,))
        return await cur.fetchone()


async def list_apps(conn: AsyncConnection) -> list[AppRow]:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(SELECT_ALL)
        return await cur.fetchall()


async def update_app(
    conn: AsyncConnection,
    app_id: str,
    *,
    base_url: str | None = None,
    delivery_concurrency: int | None = None,
    client_auth_key_enc: bytes | None = None,
) -> AppRow:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(
            UPDATE_APP,
            {
                "id": app_id,
                "base_url": base_url,
                "delivery_concurrency": delivery_concurrency,
                "client_auth_key_enc": client_auth_key_enc,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    return row
