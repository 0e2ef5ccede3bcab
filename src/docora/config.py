"""Settings: every environment variable of the service, validated once at startup."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from docora.admin.passwords import valid_hash
from docora.crypto import InvalidKeyError, parse_encryption_key
from docora.errors import ConfigError

Millis = Annotated[int, msgspec.Meta(ge=1)]
Bytes = Annotated[int, msgspec.Meta(ge=1)]


__all__ = ["ConfigError", "Settings", "load_settings"]


class Settings(msgspec.Struct, rename="upper", kw_only=True, frozen=True):
    database_url: str | None = None
    encryption_key: str | None = None
    admin_token: str | None = None
    host: str = "0.0.0.0"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 3000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # `json`: one JSON object a line from every logger (the container's default).
    log_format: Literal["text", "json"] = "text"
    cors_origin: str | None = None
    repos_base_path: str = "./.docora/repos"
    # Not in the original: a bound on this host's mirrors (git/mirrors.py); the least
    # recently used are removed past it, never one in use. Unset: unbounded.
    repos_max_bytes: Bytes | None = None
    scan_interval_ms: Millis = 60_000
    rescan_interval_ms: Millis = 300_000
    scan_concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 5
    max_retry_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    retry_base_delay_ms: Millis = 1_000
    circuit_breaker_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5
    circuit_breaker_cooldown_ms: Millis = 1_800_000
    binary_chunk_threshold_bytes: Bytes = 1_048_576
    binary_chunk_size_bytes: Bytes = 524_288
    # Batch delivery (apps with delivery_mode `batch`): events and body bytes per request.
    batch_max_events: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 500
    batch_max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 4_194_304
    delivery_timeout_ms: Millis = 30_000
    max_file_size_bytes: Bytes = 104_857_600
    # Git LFS (SPEC 13): `on` delivers the objects LFS pointers stand for, `off` the
    # pointers as git holds them. LFS_MISSING=skip skips a file whose object the server
    # does not have (listed in skipped_files) instead of failing the sync.
    lfs: Literal["on", "off"] = "on"
    lfs_missing: Literal["fail", "skip"] = "fail"
    git_timeout_ms: Millis = 300_000
    allow_local_repositories: bool = False
    allow_private_webhook_targets: bool = False
    # Push webhooks from git hosts (POST /api/hooks/...): off (404) unless set, 16+ chars.
    push_webhook_secret: str | None = None
    # GET /metrics wants this bearer token when set.
    metrics_token: str | None = None
    # `docora worker` serves its own /metrics on this port when set (on HOST).
    worker_metrics_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    # The operator console (/admin): off unless both are set. The password may be plain
    # or a hash (`docora hash-password`: scrypt; argon2 hashes are accepted too).
    admin_username: str | None = None
    admin_password: str | None = None
    # Signs console session cookies; derived from ENCRYPTION_KEY when unset.
    admin_session_secret: str | None = None
    trusted_proxies: str = ""
    # Not in the original: requests per minute per token (or per peer when
    # unauthenticated); failed authentications get a tenth of it.
    rate_limit_per_minute: Annotated[int, msgspec.Meta(ge=1)] = 600
    # Not in the original: how often a worker proves it is alive. A worker whose Postgres
    # session is gone and whose heartbeat is two beats old is dead; one silent for two and
    # a half beats, session or not, has let its lease run out. Its jobs are retried.
    worker_heartbeat_ms: Annotated[int, msgspec.Meta(ge=100)] = 2_000
    # Not in the original: on SIGTERM a worker stops taking jobs and lets running ones
    # finish for this long; the rest are interrupted and retried. Keep it below the
    # orchestrator's kill timeout (compose stop_grace_period, Kubernetes grace period).
    shutdown_grace_ms: Annotated[int, msgspec.Meta(ge=0)] = 30_000
    # Not in the original: how many remotes one worker asks at once when checking for
    # changes (jobs/checks.py; a check waits on the network, not the CPU).
    check_concurrency: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 32
    # Finished jobs older than this are removed (hourly), so the queue stays flat (SPEC 12).
    job_retention_hours: Annotated[int, msgspec.Meta(ge=1)] = 24
    # Not in the original: how long the console's trends (per-minute delivery and check
    # rollups, sync durations) are kept; pruned hourly with the jobs.
    metrics_retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 14

    @property
    def gone_after_s(self) -> float:
        """Heartbeat age that, with its presence session gone, proves a worker dead."""
        return 2 * self.worker_heartbeat_ms / 1000

    @property
    def lease_s(self) -> float:
        """How long after a heartbeat Postgres answered a worker may go on sending
        (docora/lease.py): two beats, so it stops within three of losing Postgres."""
        return 2 * self.worker_heartbeat_ms / 1000

    @property
    def stalled_after_s(self) -> float:
        """Heartbeat age that alone declares a worker gone, session or not: its lease
        has run out (plus half a beat), so it sends nothing more (SPEC 12)."""
        return self.lease_s + self.worker_heartbeat_ms / 2000

    @property
    def key_bytes(self) -> bytes:
        if self.encryption_key is None:
            raise ConfigError("ENCRYPTION_KEY is required (64 hex chars or base64 of 32 bytes)")
        return parse_encryption_key(self.encryption_key)

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return _parse_networks(self.trusted_proxies)

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in (self.cors_origin or "").split(",") if o.strip()]


ENV_NAMES = tuple(f.encode_name for f in msgspec.structs.fields(Settings))


def load_settings(
    environ: Mapping[str, str] | None = None, *, require: tuple[str, ...] = ()
) -> Settings:
    """Build Settings from the environment; raise ConfigError with one clear line."""
    environ = os.environ if environ is None else environ
    # An empty value (common in .env files) means "use the default".
    raw = {name: environ[name].strip() for name in ENV_NAMES if environ.get(name, "").strip()}
    if "LOG_FORMAT" in raw:
        raw["LOG_FORMAT"] = raw["LOG_FORMAT"].lower()
    if "LOG_LEVEL" in raw:
        level = raw["LOG_LEVEL"].lower()
        raw["LOG_LEVEL"] = "warning" if level == "warn" else level
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    _check(settings, require)
    return settings


def _explain(exc: msgspec.ValidationError) -> str:
    message, _, where = str(exc).partition(" - at `$.")
    name = where.rstrip("`") or "configuration"
    return f"{name}: {message}"


def _check(settings: Settings, require: tuple[str, ...]) -> None:
    for name in require:
        if getattr(settings, name.lower()) is None:
            raise ConfigError(f"{name} is required")
    if settings.encryption_key is not None:
        try:
            parse_encryption_key(settings.encryption_key)
        except InvalidKeyError as exc:
            raise ConfigError(str(exc)) from None
    if settings.admin_token is not None and len(settings.admin_token) < 16:
        raise ConfigError("ADMIN_TOKEN must be at least 16 characters")
    if settings.push_webhook_secret is not None and len(settings.push_webhook_secret) < 16:
        raise ConfigError("PUSH_WEBHOOK_SECRET must be at least 16 characters")
    if settings.metrics_token is not None and len(settings.metrics_token) < 16:
        raise ConfigError("METRICS_TOKEN must be at least 16 characters")
    if bool(settings.admin_username) != bool(settings.admin_password):
        raise ConfigError("ADMIN_USERNAME and ADMIN_PASSWORD must be set together")
    if settings.admin_password and not valid_hash(settings.admin_password):
        raise ConfigError("ADMIN_PASSWORD looks like a hash but cannot be read")
    if settings.admin_session_secret is not None and len(settings.admin_session_secret) < 32:
        raise ConfigError("ADMIN_SESSION_SECRET must be at least 32 characters")
    if settings.binary_chunk_size_bytes % 4:
        raise ConfigError("BINARY_CHUNK_SIZE_BYTES must be a multiple of 4 (base64 quanta)")
    try:
        _parse_networks(settings.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"TRUSTED_PROXIES: {exc}") from None


def _parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)
