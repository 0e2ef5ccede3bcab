"""Request and response bodies of the REST API; the OpenAPI schema is generated from these."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

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
RepositoryId = Annotated[
    str, Meta(pattern=r"^repo_[0-9a-f]{24}$", examples=["repo_0123456789abcdef01234567"])
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


class RepositoryBody(msgspec.Struct):
    repository_id: str
    github_url: str
    owner: str
    name: str
    branch: str
    is_private: bool
    created_at: datetime


class WatchSummary(msgspec.Struct):
    repository_id: str
    github_url: str
    owner: str
    name: str
    branch: str
    is_private: bool
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


class SkippedFileBody(msgspec.Struct):
    path: str
    reason: Annotated[str, Meta(description="symlink, submodule, too large, non-UTF-8 path")]


class LfsBody(msgspec.Struct):
    objects: Annotated[
        int, Meta(description="Files of the snapshot whose content is a Git LFS object")
    ]
    bytes: Annotated[int, Meta(description="Their content's bytes")]


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
