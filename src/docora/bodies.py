"""The JSON bodies more than one front end shows (the REST API, the operator API and console,
the CLI): onboarding, an app's profile, a watch's summary, its circuit breaker and LFS
counts; and the functions that build them from store rows, so that every front end
states a watch the same way."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from docora.store.apps import AppRow
from docora.store.repositories import Repository
from docora.store.watches import Watch

AppName = Annotated[
    str, Meta(min_length=3, max_length=100, description="Display name, 3-100 chars")
]
BaseUrl = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2048,
        description="Webhook base URL; events are POSTed to {base_url}/{event}. https only "
        "(http when ALLOW_PRIVATE_WEBHOOK_TARGETS), must resolve to public addresses.",
    ),
]
Email = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
ClientAuthKey = Annotated[
    str,
    Meta(
        min_length=16,
        max_length=500,
        description="HMAC key used to sign every webhook; stored encrypted, never returned",
    ),
]
DeliveryConcurrency = Annotated[
    int, Meta(ge=1, le=32, description="Requests in flight at once for this app (1 = sequential)")
]
WatchStatus = Literal["pending_snapshot", "scanning", "synced", "retrying", "failed"]


DeliveryMode = Annotated[
    Literal["single", "batch"],
    Meta(
        description="`single`: one POST {base_url}/{event} per event. `batch`: POST "
        "{base_url}/batch with up to BATCH_MAX_EVENTS events (SPEC 11)"
    ),
]


class ErrorBody(msgspec.Struct):
    error: Annotated[str, Meta(description="Human-readable message")]


class MessageBody(msgspec.Struct):
    message: str


class OnboardRequest(msgspec.Struct, forbid_unknown_fields=True):
    app_name: AppName
    base_url: BaseUrl
    email: Email
    client_auth_key: ClientAuthKey
    website: Annotated[str, Meta(max_length=2048)] | None = None
    description: Annotated[str, Meta(max_length=500)] | None = None
    delivery_concurrency: DeliveryConcurrency = 1
    delivery_mode: DeliveryMode = "single"


class OnboardResponse(msgspec.Struct):
    app_id: Annotated[str, Meta(description="app_ + 24 hex")]
    token: Annotated[str, Meta(description="Bearer token (docora_ + 64 hex). Shown only once.")]
    created_at: datetime


class AppProfile(msgspec.Struct):
    app_id: str
    app_name: str
    base_url: str
    email: str
    website: str | None
    description: str | None
    delivery_concurrency: int
    delivery_mode: DeliveryMode
    created_at: datetime
    updated_at: datetime


class RepositoryFields(msgspec.Struct):
    """What every body about a repository starts with."""

    repository_id: str
    github_url: str
    owner: str
    name: str
    branch: str
    is_private: bool


class RepositoryBody(RepositoryFields):
    created_at: datetime


class WatchSummary(RepositoryFields):
    status: WatchStatus
    last_error: str | None
    last_scanned_at: datetime | None
    commit_sha: str | None
    retry_count: int
    created_at: datetime
    paths: Annotated[list[str] | None, Meta(description="The watch's path filter; null: all")]


class CircuitBreakerBody(msgspec.Struct):
    status: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    cooldown_until: datetime | None


class LfsBody(msgspec.Struct):
    objects: Annotated[
        int, Meta(description="Files of the snapshot whose content is a Git LFS object")
    ]
    bytes: Annotated[int, Meta(description="Their content's bytes")]


def profile(row: AppRow) -> AppProfile:
    return AppProfile(
        app_id=row.id,
        app_name=row.name,
        base_url=row.base_url,
        email=row.email,
        website=row.website,
        description=row.description,
        delivery_concurrency=row.delivery_concurrency,
        delivery_mode=row.delivery_mode,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def circuit_breaker(repo: Repository, now: datetime) -> CircuitBreakerBody:
    if repo.cooldown_until is None:
        status = "closed"
    elif repo.cooldown_until > now:
        status = "open"
    else:
        status = "half_open"
    return CircuitBreakerBody(
        status=status,
        consecutive_failures=repo.consecutive_failures,
        cooldown_until=repo.cooldown_until,
    )


def repository_fields(repo: Repository) -> dict[str, object]:
    return {
        "repository_id": repo.id,
        "github_url": repo.url,
        "owner": repo.owner,
        "name": repo.name,
        "branch": repo.branch,
        "is_private": repo.is_private,
    }


def summary(watch: Watch, repo: Repository) -> WatchSummary:
    return WatchSummary(
        **repository_fields(repo),  # type: ignore[arg-type]
        status=watch.status,
        last_error=watch.last_error,
        last_scanned_at=watch.last_scanned_at,
        commit_sha=watch.commit_sha,
        retry_count=watch.retry_count,
        created_at=watch.created_at,
        paths=watch.paths,
    )


def lfs_counts(repo: Repository) -> LfsBody:
    return LfsBody(objects=repo.lfs_objects, bytes=repo.lfs_bytes)
