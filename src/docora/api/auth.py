"""Bearer authentication: app tokens (digest lookup) and the admin token."""

from __future__ import annotations

import math

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from psycopg import AsyncConnection

from docora.crypto import TOKEN_PATTERN, digests_match, secret_matches, token_digest
from docora.store import apps
from docora.store.apps import AppRow
from docora.web.context import WebContext
from docora.web.observability import note_app
from docora.web.ratelimit import bearer_token, peer_address

BEARER_SECURITY = [{"BearerAuth": []}]
ADMIN_SECURITY = [{"AdminToken": []}]


def refuse_brute_force(ctx: WebContext, peer: str) -> None:
    wait = ctx.auth_failures.blocked_for(peer)
    if wait > 0:
        raise HTTPException(
            status_code=429,
            detail="Too many failed authentication attempts, retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def unauthorized(ctx: WebContext, peer: str, message: str) -> NotAuthorizedException:
    ctx.auth_failures.acquire(peer)
    return NotAuthorizedException(detail=message, headers={"WWW-Authenticate": "Bearer"})


async def authenticated_app(request: Request, db: NamedDependency[AsyncConnection]) -> AppRow:
    ctx: WebContext = request.app.state.docora
    peer = peer_address(request.scope)
    refuse_brute_force(ctx, peer)
    token = bearer_token(request.scope)
    if token is None:
        raise unauthorized(ctx, peer, "Missing bearer token")
    digest = token_digest(token)
    # The shape check costs nothing; the lookup is one indexed query either way.
    found = await apps.find_by_token_digest(db, digest) if TOKEN_PATTERN.match(token) else None
    if found is None or not digests_match(found[1], digest):
        raise unauthorized(ctx, peer, "Invalid bearer token")
    ctx.verified.add(token)
    note_app(request.scope, found[0].id)
    return found[0]


def admin_token_matches(ctx: WebContext, token: str | None) -> bool:
    """The bearer is ADMIN_TOKEN (constant time); it then gets a rate-limit bucket of its own."""
    expected = ctx.settings.admin_token
    if token is None or expected is None or not secret_matches(token, expected):
        return False
    ctx.verified.add(token)
    return True


async def admin_guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    ctx: WebContext = connection.app.state.docora
    peer = peer_address(connection.scope)
    refuse_brute_force(ctx, peer)
    expected = ctx.settings.admin_token
    token = bearer_token(connection.scope)
    if expected is None:
        raise HTTPException(
            status_code=403, detail="Onboarding over HTTP is disabled: ADMIN_TOKEN is not set"
        )
    if not admin_token_matches(ctx, token):
        raise unauthorized(ctx, peer, "Invalid admin token")
