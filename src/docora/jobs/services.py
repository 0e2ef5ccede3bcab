"""What tasks need at run time; built once per worker process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from docora import metrics
from docora.config import Settings
from docora.crypto import SecretBox
from docora.deliver.client import WebhookSender
from docora.git import mirrors
from docora.git.lfs import LfsClient
from docora.git.mirror import fetch_branch, mirror_path
from docora.git.mirrors import Accounting, HostMirrors
from docora.git.smart_http import SmartHttpRefs
from docora.lease import Lease
from docora.net import Resolver, system_resolver
from docora.scan.lfs_content import LfsSource
from docora.store.repositories import Repository

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    pool: AsyncConnectionPool
    box: SecretBox
    sender: WebhookSender
    # The process's lease (docora/lease.py), renewed by its presence heartbeats; the
    # sender's own, so that nothing is sent once it has run out.
    lease: Lease
    resolver: Resolver = system_resolver
    # In-process smart-HTTP ref reads (git/smart_http.py); None: git ls-remote for all.
    refs: SmartHttpRefs | None = None
    # Git LFS downloads (git/lfs.py); None when LFS=off.
    lfs: LfsClient | None = None
    # Set when the worker learns it was declared gone, so that the runtime starts it afresh.
    revoked: asyncio.Event = field(default_factory=asyncio.Event)
    mirrors: HostMirrors = field(init=False)

    def __post_init__(self) -> None:
        base = Path(self.settings.repos_base_path).resolve()
        self.mirrors = HostMirrors(base, self.settings.repos_max_bytes)

    @contextlib.asynccontextmanager
    async def using_mirror(self, repo: Repository) -> AsyncIterator[Path]:
        """This host's mirror of the repository, held against eviction while a job reads
        or fetches it (git/mirrors.py)."""
        mirror = self.mirror_for(repo)
        async with mirrors.using(mirror):
            yield mirror

    async def fetch_mirror(
        self, repo: Repository, mirror: Path, *, token: str | None, tip: str
    ) -> str:
        """Fetch `tip` of the repository's branch into its mirror (one held by
        using_mirror), then account for the bytes and keep the host within
        REPOS_MAX_BYTES; return the fetched commit."""
        started = time.perf_counter()
        fetched = await fetch_branch(
            mirror,
            url=repo.url,
            branch=repo.branch,
            token=token,
            allow_local=self.settings.allow_local_repositories,
            timeout_ms=self.settings.git_timeout_ms,
            resolver=self.resolver,
            tip=tip,
        )
        metrics.FETCH_DURATION.observe(time.perf_counter() - started)
        self._note(await asyncio.to_thread(self.mirrors.fetched, mirror))
        return fetched

    def lfs_source(self, repo: Repository, token: str | None) -> LfsSource | None:
        """Where a scan or a delivery of `repo` gets LFS objects (None: LFS=off)."""
        if self.lfs is None:
            return None
        return LfsSource(
            client=self.lfs,
            remote_url=repo.url,
            token=token,
            skip_missing=self.settings.lfs_missing == "skip",
        )

    def lfs_mode_changed(self, snapshot_commit: str | None, snapshot_lfs: bool | None) -> bool:
        """Whether a snapshot was made with LFS the other way than the setting says now
        (NULL: made before LFS existed, so without it): it must be scanned again in full."""
        if snapshot_commit is None:
            return False
        return bool(snapshot_lfs) != (self.lfs is not None)

    async def account_mirror(self, mirror: Path) -> None:
        """Account for a mirror that grew without a fetch (LFS objects, a spool)."""
        self._note(await asyncio.to_thread(self.mirrors.fetched, mirror))

    async def account_mirrors(self) -> None:
        """Walk this host's mirrors (at start: the gauge, and the bound if it shrank)."""
        self._note(await asyncio.to_thread(self.mirrors.walk))

    def _note(self, accounting: Accounting) -> None:
        metrics.MIRROR_BYTES.set(accounting.total_bytes)
        if accounting.evicted:
            metrics.MIRROR_EVICTIONS.inc(len(accounting.evicted))
            log.info(
                "removed %d least recently used mirrors (REPOS_MAX_BYTES): %s",
                len(accounting.evicted),
                ", ".join(str(m.relative_to(self.mirrors.base)) for m in accounting.evicted),
            )

    def mirror_for(self, repo: Repository) -> Path:
        return mirror_path(
            self.settings.repos_base_path,
            url=repo.url,
            host=repo.host,
            owner=repo.owner,
            name=repo.name,
            branch=repo.branch,
        )
