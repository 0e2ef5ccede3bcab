"""What tasks need at run time; built once per worker process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from docora.config import Settings
from docora.crypto import SecretBox
from docora.deliver.client import WebhookSender
from docora.git.mirror import mirror_path
from docora.git.smart_http import SmartHttpRefs
from docora.net import Resolver, system_resolver
from docora.store.repositories import Repository


@dataclass
class Services:
    settings: Settings
    pool: AsyncConnectionPool
    box: SecretBox
    sender: WebhookSender
    resolver: Resolver = system_resolver
    # In-process smart-HTTP ref reads (git/smart_http.py); None: git ls-remote for all.
    refs: SmartHttpRefs | None = None

    def mirror_for(self, repo: Repository) -> Path:
        return mirror_path(
            self.settings.repos_base_path,
            url=repo.url,
            host=repo.host,
            owner=repo.owner,
            name=repo.name,
            branch=repo.branch,
        )
