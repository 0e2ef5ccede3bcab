"""POST /api/hooks/{github,gitlab,gitea,bitbucket}: a git host says a branch moved; the
matching repositories' syncs are queued at once (SPEC section 8)."""

from __future__ import annotations

from typing import ClassVar

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from psycopg import AsyncConnection

from docora.api.responses import errors
from docora.errors import NotFound
from docora.git.urls import InvalidRepositoryUrl, parse_repository_url
from docora.hooks.providers import PROVIDERS
from docora.store import repositories
from docora.web.context import WebContext

# GitHub caps its payloads at 25 MiB; the rest of the API keeps its 1 MiB limit.
MAX_HOOK_BYTES = 25 * 1024 * 1024


class HooksController(Controller):
    path = "/api/hooks"
    tags: ClassVar[list[str]] = ["hooks"]

    @post(
        "/{provider:str}",
        status_code=202,
        summary="A push webhook from a git host",
        description="Verified as the provider signs, over the raw body, with "
        "PUSH_WEBHOOK_SECRET. Queues a sync of every registered repository with that URL and "
        "branch; answers how many. 404 while PUSH_WEBHOOK_SECRET is unset.",
        request_max_body_size=MAX_HOOK_BYTES,
        responses=errors(400, 401, 404, 413),
        security=[],
    )
    async def push(
        self, request: Request, provider: FromPath[str], db: NamedDependency[AsyncConnection]
    ) -> Response:
        ctx: WebContext = request.app.state.docora
        secret = ctx.settings.push_webhook_secret
        if not secret or provider not in PROVIDERS:
            raise NotFound("No such hook")
        verify, parse = PROVIDERS[provider]
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not verify(secret, headers, body):
            return Response({"error": "Bad or missing hook signature"}, status_code=401)
        push = parse(headers, body)
        if push.kind == "ping":
            return Response({"message": "pong"}, status_code=200)
        queued = 0
        if push.kind == "push":
            queued = await _wake(ctx, db, push.url, list(push.branches))
        return Response({"queued": queued}, status_code=202)


async def _wake(ctx: WebContext, db: AsyncConnection, url: str, branches: list[str]) -> int:
    try:
        normalized = parse_repository_url(url, allow_local=ctx.settings.allow_local_repositories)
    except InvalidRepositoryUrl:
        return 0  # not a URL Docora could have registered: nothing matches
    matched = await repositories.matching_push(db, normalized.url, branches)
    for repository_id in matched:
        # One waiting sync per repository: when one already waits, it will see this push.
        await ctx.queue.sync_now(db, repository_id)
    return len(matched)
