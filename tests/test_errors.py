"""One error hierarchy, mapped to HTTP statuses in one place (api/errors.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import docora
from docora.deliver.targets import UnsafeTarget
from docora.errors import (
    ConfigError,
    Conflict,
    DocoraError,
    InvalidInput,
    MalformedInput,
    NotFound,
    Unavailable,
)
from docora.git.command import GitError, GitErrorKind
from docora.git.urls import InvalidRepositoryUrl, InvalidToken
from docora.migrate import SchemaError
from docora.net import RefusedAddress
from docora.web.errors import status_of


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MalformedInput("x"), 400),
        (InvalidInput("x"), 422),
        (InvalidRepositoryUrl("x"), 422),
        (InvalidToken("x"), 422),
        (UnsafeTarget("x"), 422),
        (RefusedAddress("x"), 422),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (Unavailable("x"), 503),
        (ConfigError("x"), 500),
        (SchemaError("x"), 500),
        (GitError(GitErrorKind.AUTH, "x"), 500),  # routes say what a git failure means
    ],
)
def test_statuses_come_from_the_error_class(error, status):
    assert isinstance(error, DocoraError)
    assert status_of(error) == status


def test_routes_raise_docora_errors_not_http_exceptions():
    """Handlers raise what went wrong; only auth (401/403/429) speaks HTTP itself."""
    api = Path(docora.__file__).parent / "api"
    offenders = []
    for path in api.glob("*.py"):
        if path.name in ("errors.py", "auth.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "litestar.exceptions":
                offenders.append((path.name, [a.name for a in node.names]))
    assert offenders == []


def test_a_docora_error_reaches_the_client_as_json(client):
    r = client.post(
        "/api/repositories",
        json={"github_url": "https://user:pw@github.com/a/b"},
        headers={"Authorization": "Bearer " + _token(client)},
    )
    assert r.status_code == 422
    assert r.json() == {"error": "github_url must not contain credentials"}


def _token(client) -> str:
    from tests.conftest import onboard

    return onboard(client)[1]["Authorization"].split()[1]
