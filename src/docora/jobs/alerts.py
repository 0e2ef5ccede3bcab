"""`sync_failed`: sent once to each watching app when a repository's circuit breaker opens."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from procrastinate import JobContext

from docora.crypto import client_key_context
from docora.deliver.payloads import (
    CircuitInfo,
    FailureInfo,
    RepositoryRef,
    SyncFailedEvent,
    encode,
    iso_timestamp,
)
from docora.deliver.run import DeliveryFailed
from docora.deliver.signing import signed_headers
from docora.jobs.retry import attempt_number
from docora.jobs.services import Services
from docora.store import apps, changes, repositories
from docora.store.changes import LogEntry

_NAMESPACE = uuid.UUID("0b6d8f5e-5a43-4d0e-8d86-3c5c1f0e7a11")


async def send_sync_failed(
    services: Services,
    context: JobContext,
    *,
    app_id: str,
    repository_id: str,
    message: str,
    consecutive_failures: int,
    cooldown_until: str | None,
    retry_count: int,
) -> None:
    settings = services.settings
    async with services.pool.connection() as conn:
        app = await apps.get_app(conn, app_id)
        repo = await repositories.get_repository(conn, repository_id)
    if app is None or repo is None:
        return
    event = SyncFailedEvent(
        event="sync_failed",
        repository=RepositoryRef(repo.id, repo.url, repo.owner, repo.name),
        error=FailureInfo(type="git_failure", message=message),
        circuit_breaker=CircuitInfo(
            status="open",
            consecutive_failures=consecutive_failures,
            threshold=settings.circuit_breaker_threshold,
            cooldown_until=_iso(cooldown_until),
        ),
        retry_count=retry_count,
        timestamp=iso_timestamp(),
    )
    body = encode(event)
    # One alert per opening: the id is derived from it, stable across retries.
    request_id = uuid.uuid5(_NAMESPACE, f"{app_id}|{repository_id}|{cooldown_until}")
    key = services.box.decrypt(app.client_auth_key_enc, context=client_key_context(app.id))
    # SSRF rules: the sender checks the resolved address as it connects (a refusal is a
    # failed attempt, logged like any other).
    headers = signed_headers(
        app_id=app.id,
        key=key,
        event="sync_failed",
        delivery_id=str(request_id),
        timestamp=int(time.time()),
        body=body,
    )
    result = await services.sender.post(f"{app.base_url}/sync_failed", headers, body)
    async with services.pool.connection() as conn:
        await changes.log_attempt(
            conn,
            LogEntry(
                app_id=app_id,
                repository_id=repository_id,
                delivery_id=request_id,
                event="sync_failed",
                path=None,
                sha=None,
                commit_sha=None,
                status="delivered" if result.ok else "failed",
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                attempt=attempt_number(context.job),
                error=result.error,
            ),
        )
    if not result.ok:
        raise DeliveryFailed(f"sync_failed: {result.error}")


def _iso(value: str | None) -> str | None:
    if value is None:
        return None
    return iso_timestamp(datetime.fromisoformat(value))
