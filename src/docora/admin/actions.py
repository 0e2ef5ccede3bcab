"""Operator actions, each one transaction: the same code behind the operator API and the
console's forms."""

from __future__ import annotations

import secrets

from psycopg import AsyncConnection

from docora.crypto import new_app_token, token_digest
from docora.errors import InvalidInput, NotFound
from docora.jobs.operations import WATCH_ACTIONS, act_on_watch
from docora.jobs.queue import JobQueue
from docora.store import apps, operations
from docora.store.operations import Operation

ACTIONS = tuple(WATCH_ACTIONS)
# What a bulk operation covers when no status is given.
DEFAULT_STATUSES = {
    "retry": ["failed", "retrying"],
    "resync": ["pending_snapshot", "scanning", "synced", "retrying", "failed"],
}
WATCH_STATUSES = DEFAULT_STATUSES["resync"]


async def watch_action(
    db: AsyncConnection, queue: JobQueue, action: str, app_id: str, repository_id: str
) -> None:
    """Retry or resync one watch and queue its sync, in one transaction (NotFound when
    there is no such watch or action)."""
    if action not in WATCH_ACTIONS:
        raise NotFound(f"No action {action!r}; one of {', '.join(ACTIONS)}")
    async with db.transaction():
        if not await act_on_watch(db, queue, action, app_id, repository_id):
            raise NotFound(f"No watch of {repository_id} by {app_id}")


async def start_operation(
    db: AsyncConnection,
    queue: JobQueue,
    *,
    action: str,
    app_id: str | None,
    status: str | None,
) -> Operation:
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}")
    if status is not None and status not in WATCH_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(WATCH_STATUSES)}")
    if app_id is not None and await apps.get_app(db, app_id) is None:
        raise NotFound(f"No app {app_id}")
    statuses = [status] if status else DEFAULT_STATUSES[action]
    async with db.transaction():
        operation = await operations.create_operation(
            db,
            id="op_" + secrets.token_hex(12),
            action=action,
            app_id=app_id,
            status_filter=status,
            statuses=statuses,
        )
        await queue.run_operation(db, operation.id)
    return operation


async def get_operation(db: AsyncConnection, operation_id: str) -> Operation:
    operation = await operations.get_operation(db, operation_id)
    if operation is None:
        raise NotFound(f"No operation {operation_id}")
    return operation


async def cancel_operation(db: AsyncConnection, operation_id: str) -> Operation:
    await get_operation(db, operation_id)
    await operations.request_cancel(db, operation_id)
    return await get_operation(db, operation_id)


async def rotate_token(db: AsyncConnection, app_id: str) -> str:
    """A new bearer token; the old one stops working with this commit."""
    token = new_app_token()
    if not await apps.replace_token_digest(db, app_id, token_digest(token)):
        raise NotFound(f"No app {app_id}")
    return token


async def delete_app(db: AsyncConnection, queue: JobQueue, app_id: str) -> None:
    """The app, its watches, delivered state and log, and the repositories nobody else
    watches; their mirrors are removed by a job on the workers."""
    async with db.transaction():
        orphaned = await apps.delete_app(db, app_id)
        if orphaned is None:
            raise NotFound(f"No app {app_id}")
        for repository in orphaned:
            await queue.forget_mirror(db, repository)
