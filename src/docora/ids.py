"""Public identifiers."""

from __future__ import annotations

import hashlib
import secrets


def new_app_id() -> str:
    return "app_" + secrets.token_hex(12)


def repository_id(url: str, branch: str) -> str:
    """Stable per (normalized url, branch): the same repository always gets the same id,
    so concurrent registrations converge on one row and re-creations keep their id."""
    digest = hashlib.sha256(f"{url}\n{branch}".encode()).hexdigest()
    return "repo_" + digest[:24]
