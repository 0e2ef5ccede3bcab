"""External tools some tests need. Outside CI a missing one skips the test with one line
saying how to get it; in CI (CI=true) it fails the test: a tool CI lacks is a broken
pipeline, never a silently skipped check."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, how: str) -> str:
    """The tool's path; skip (or fail in CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({how})"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path
