"""Request and response bodies of the REST API; the OpenAPI schema is generated from these
(with the bodies it shares with the operator's front ends, docora.bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from docora.bodies import (
    BaseUrl,
    CircuitBreakerBody,
    ClientAuthKey,
    DeliveryConcurrency,
    DeliveryMode,
    LfsBody,
    WatchSummary,
)


class AppUpdateRequest(msgspec.Struct, forbid_unknown_fields=True):
    base_url: BaseUrl | None = None
    delivery_concurrency: DeliveryConcurrency | None = None
    delivery_mode: DeliveryMode | None = None
    client_auth_key: ClientAuthKey | None = None


PathPatterns = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=1024)]],
    Meta(
        min_length=1,
        max_length=50,
        description="gitignore-style patterns read as includes (`!` excludes), e.g. "
        '["docs/**", "*.md", "!docs/drafts/**"]; null or absent: every file',
    ),
]


class RegisterRepositoryRequest(msgspec.Struct, forbid_unknown_fields=True):
    github_url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=2048,
            description="https URL of the repository (GitHub or any git host)",
        ),
    ]
    github_token: (
        Annotated[
            str, Meta(min_length=1, max_length=255, description="Token for private repositories")
        ]
        | None
    ) = None
    branch: (
        Annotated[
            str, Meta(min_length=1, max_length=255, description="Defaults to the remote's default")
        ]
        | None
    ) = None
    paths: PathPatterns | None = None


class WatchUpdateRequest(msgspec.Struct, forbid_unknown_fields=True):
    paths: PathPatterns | msgspec.UnsetType | None = msgspec.UNSET


class SkippedFileBody(msgspec.Struct):
    path: str
    reason: Annotated[str, Meta(description="symlink, submodule, too large, non-UTF-8 path")]


class WatchDetail(WatchSummary):
    circuit_breaker: CircuitBreakerBody
    files_delivered: int
    pending_changes: Annotated[
        int | None, Meta(description="Files that differ from the latest snapshot; null before it")
    ]
    skipped_files: Annotated[
        list[SkippedFileBody], Meta(description="Files of the snapshot that are never sent")
    ]
    lfs: Annotated[LfsBody, Meta(description="Git LFS content in the snapshot (SPEC 13)")]


class ManifestItem(msgspec.Struct):
    path: str
    sha: Annotated[str, Meta(description="SHA-256 (hex) of the content this app acknowledged")]
    size: Annotated[
        int | None,
        Meta(description="Bytes; null for a file acknowledged before sizes were recorded"),
    ]


class Manifest(msgspec.Struct):
    commit_sha: Annotated[
        str | None,
        Meta(description="The commit this watch was last fully synced at; null before that"),
    ]
    items: list[ManifestItem]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page")]


class WatchList(msgspec.Struct):
    repositories: list[WatchSummary]


class TokenUpdateRequest(msgspec.Struct, forbid_unknown_fields=True):
    github_token: Annotated[str, Meta(min_length=1, max_length=255)]


class DeliveryBody(msgspec.Struct):
    id: str
    delivery_id: str
    repository_id: str
    event: Literal["create", "update", "delete", "sync_failed", "batch"]
    path: str | None
    sha: str | None
    commit_sha: str | None
    status: Literal["delivered", "failed"]
    status_code: int | None
    latency_ms: int
    attempt: int
    error: str | None
    created_at: datetime


class DeliveryPage(msgspec.Struct):
    deliveries: list[DeliveryBody]
    next_cursor: Annotated[str | None, Meta(description="Pass as ?cursor= for the next page")]


class HealthBody(msgspec.Struct):
    status: Literal["ok", "degraded", "unavailable"]
    timestamp: str
    uptime: float
    database: Literal["ok", "unavailable"]
    queue: Literal["ok", "missing_schema", "unavailable"]


class VersionBody(msgspec.Struct):
    version: str
