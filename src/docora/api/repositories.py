"""Repository registration and the calling app's watches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from psycopg import AsyncConnection

from docora.admin.paging import decode_cursor, page_of
from docora.api.auth import BEARER_SECURITY
from docora.api.models import (
    Manifest,
    ManifestItem,
    RegisterRepositoryRequest,
    SkippedFileBody,
    TokenUpdateRequest,
    WatchDetail,
    WatchList,
    WatchUpdateRequest,
)
from docora.api.responses import errors
from docora.bodies import (
    MessageBody,
    RepositoryBody,
    WatchSummary,
    circuit_breaker,
    lfs_counts,
    repository_fields,
    summary,
)
from docora.crypto import watch_token_context
from docora.db import pipelined_transaction
from docora.errors import DocoraError, InvalidInput, NotFound
from docora.git.command import GitError, GitErrorKind
from docora.git.remote import AccessCheck, check_access
from docora.git.urls import (
    RepositoryUrl,
    check_branch,
    check_token,
    parse_repository_url,
)
from docora.ids import repository_id as make_repository_id
from docora.jobs.operations import act_on_watch
from docora.scan.filters import compile_filter
from docora.store import changes, repositories, snapshots, watches
from docora.store.apps import AppRow
from docora.store.repositories import Repository
from docora.store.watches import Watch
from docora.web.context import WebContext

MANIFEST_MAX_LIMIT = 10_000
RepositoryIdParam = Parameter(
    pattern=r"^repo_[0-9a-f]{24}$", description="repo_ + 24 hex", title="repository_id"
)


def _parse_request(ctx: WebContext, data: RegisterRepositoryRequest) -> RepositoryUrl:
    """The URL, token and branch checked for shape; InvalidInput (422) otherwise."""
    repo = parse_repository_url(data.github_url, allow_local=ctx.settings.allow_local_repositories)
    if data.github_token is not None:
        check_token(data.github_token, repo)
    if data.branch is not None:
        check_branch(data.branch)
    return repo


def unreadable(exc: GitError) -> DocoraError:
    """What a client learns when git could not read a repository: the failure class, never
    the remote's own output (which could map an internal network)."""
    if exc.kind is GitErrorKind.REFUSED:
        return InvalidInput(f"github_url refused ({exc.kind}): {exc.message}")
    return NotFound(f"Repository not found or not accessible ({exc.kind}): {exc.message}")


async def _check_access(
    ctx: WebContext, repo: RepositoryUrl, branch: str | None, token: str | None
) -> AccessCheck:
    try:
        return await check_access(
            repo.url,
            branch=branch,
            token=token,
            allow_local=ctx.settings.allow_local_repositories,
            timeout_ms=ctx.settings.git_timeout_ms,
            resolver=ctx.resolver,
            refs=ctx.refs,
        )
    except GitError as exc:
        raise unreadable(exc) from None


async def _existing_watch(
    db: AsyncConnection, app: AppRow, repository_id: str
) -> tuple[Watch, Repository]:
    found = await watches.app_watch(db, app.id, repository_id)
    if found is None:
        raise NotFound(f"Repository {repository_id} is not watched by this app")
    return found


class RepositoriesController(Controller):
    path = "/api/repositories"
    tags: ClassVar[list[str]] = ["repositories"]
    security = BEARER_SECURITY

    @post(
        "/",
        status_code=201,
        summary="Register (watch) a repository",
        description="Checks access with one `git ls-remote`. Registering a repository this app "
        "already watches resets the watch: its next sync sends every file again.",
        responses=errors(400, 401, 404, 413, 422),
    )
    async def register(
        self,
        request: Request,
        data: JSONBody[RegisterRepositoryRequest],
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
    ) -> RepositoryBody:
        ctx: WebContext = request.app.state.docora
        repo = _parse_request(ctx, data)
        path_filter = compile_filter(data.paths)
        access = await _check_access(ctx, repo, data.branch, data.github_token)
        branch = access.head.branch
        repository_id = make_repository_id(repo.url, branch)
        token_enc = (
            ctx.box.encrypt(data.github_token, context=watch_token_context(app.id, repository_id))
            if data.github_token
            else None
        )
        async with pipelined_transaction(db):
            row = await repositories.upsert_repository(
                db,
                id=repository_id,
                url=repo.url,
                host=repo.host,
                owner=repo.owner,
                name=repo.name,
                branch=branch,
                is_private=access.is_private,
            )
            await watches.reset_watch(
                db,
                app_id=app.id,
                repository_id=repository_id,
                token_enc=token_enc,
                path_filter=path_filter,
            )
            await ctx.queue.sync_now(db, repository_id)
        return RepositoryBody(**repository_fields(row), created_at=row.created_at)  # type: ignore[arg-type]

    @get("/", summary="The app's watched repositories", responses=errors(401))
    async def list_watches(
        self, app: NamedDependency[AppRow], db: NamedDependency[AsyncConnection]
    ) -> WatchList:
        rows = await watches.app_watches(db, app.id)
        return WatchList(repositories=[summary(watch, repo) for watch, repo in rows])

    @get(
        "/{repository_id:str}",
        summary="One watch's sync status",
        responses=errors(400, 401, 404),
    )
    async def get_watch(
        self,
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
    ) -> WatchDetail:
        watch, repo = await _existing_watch(db, app, repository_id)
        skipped = await snapshots.skipped_files(db, repository_id)
        return WatchDetail(
            **msgspec.structs.asdict(summary(watch, repo)),
            circuit_breaker=circuit_breaker(repo, datetime.now(UTC)),
            files_delivered=watch.files_delivered,
            pending_changes=watch.pending_changes,
            skipped_files=[SkippedFileBody(**item) for item in skipped],
            lfs=lfs_counts(repo),
        )

    @delete(
        "/{repository_id:str}",
        status_code=204,
        summary="Unwatch a repository (deletes this app's delivered state)",
        responses=errors(400, 401, 404),
    )
    async def unwatch(
        self,
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
    ) -> None:
        if not await watches.delete_watch(db, app.id, repository_id):
            raise NotFound(f"Repository {repository_id} is not watched by this app")

    @patch(
        "/{repository_id:str}/token",
        summary="Replace the repository token",
        description="Verifies access with the new token, clears the error state and the "
        "circuit breaker, and queues a sync.",
        responses=errors(400, 401, 404, 413, 422),
    )
    async def update_token(
        self,
        request: Request,
        data: JSONBody[TokenUpdateRequest],
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
    ) -> MessageBody:
        ctx: WebContext = request.app.state.docora
        _, row = await _existing_watch(db, app, repository_id)
        repo = parse_repository_url(row.url, allow_local=True)
        check_token(data.github_token, repo)
        try:
            await check_access(
                row.url,
                branch=row.branch,
                token=data.github_token,
                allow_local=ctx.settings.allow_local_repositories,
                timeout_ms=ctx.settings.git_timeout_ms,
                resolver=ctx.resolver,
                refs=ctx.refs,
            )
        except GitError as exc:
            raise InvalidInput(
                f"The token cannot read the repository ({exc.kind}): {exc.message}"
            ) from None
        token_enc = ctx.box.encrypt(
            data.github_token, context=watch_token_context(app.id, repository_id)
        )
        async with db.transaction():
            await watches.replace_token(
                db, app_id=app.id, repository_id=repository_id, token_enc=token_enc
            )
            await ctx.queue.sync_now(db, repository_id)
        return MessageBody(message="Token updated successfully")

    @post(
        "/{repository_id:str}/resync",
        status_code=202,
        summary="Queue an immediate sync",
        description="Only what changed since the last acknowledged state is sent.",
        responses=errors(400, 401, 404),
    )
    async def resync(
        self,
        request: Request,
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
    ) -> MessageBody:
        ctx: WebContext = request.app.state.docora
        await _existing_watch(db, app, repository_id)
        async with db.transaction():
            await watches.mark_resync(db, app.id, repository_id)
            await ctx.queue.sync_now(db, repository_id)
        return MessageBody(message="Sync queued")

    @get(
        "/{repository_id:str}/files",
        summary="What this app holds of the repository (the manifest)",
        description="The delivered state Docora keeps for this watch: every file this app "
        "acknowledged, with the SHA-256 and size it was sent with, in path byte order, a page "
        "at a time. Compare it with your copy to audit it; `POST .../resend` sends it all "
        "again.",
        responses=errors(400, 401, 404),
    )
    async def manifest(
        self,
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
        cursor: Annotated[
            str | None, Parameter(description="next_cursor of the previous page")
        ] = None,
        limit: Annotated[
            int, Parameter(ge=1, le=MANIFEST_MAX_LIMIT, description="Files per page")
        ] = 1000,
    ) -> Manifest:
        watch, _ = await _existing_watch(db, app, repository_id)
        after = decode_cursor(cursor, 1)
        rows = await changes.delivered_page(
            db,
            app_id=app.id,
            repository_id=repository_id,
            after=str(after[0]) if after else "",
            limit=limit + 1,
        )
        rows, next_cursor = page_of(rows, limit, lambda r: (r.path,))
        return Manifest(
            commit_sha=watch.commit_sha,
            items=[ManifestItem(path=r.path, sha=r.sha, size=r.size) for r in rows],
            next_cursor=next_cursor,
        )

    @post(
        "/{repository_id:str}/resend",
        status_code=202,
        summary="Forget what this app holds and send everything again",
        description="The delivered state is dropped and a sync queued in one transaction; "
        "every file then arrives as `create` (prune what the new manifest lacks). A delivery "
        "of the old state still running stops before its next acknowledgement.",
        responses=errors(400, 401, 404),
    )
    async def resend(
        self,
        request: Request,
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
    ) -> MessageBody:
        ctx: WebContext = request.app.state.docora
        async with db.transaction():
            if not await act_on_watch(db, ctx.queue, "resync", app.id, repository_id):
                raise NotFound(f"Repository {repository_id} is not watched by this app")
        return MessageBody(message="Delivered state forgotten; a full resend is queued")

    @patch(
        "/{repository_id:str}",
        summary="Change the watch's path filter",
        description="`paths`: 1-50 gitignore-style patterns read as includes, or null for "
        "every file. A changed filter queues a sync that sends `create` for files that became "
        "included and `delete` for files that became excluded, nothing else. An empty body "
        "changes nothing.",
        responses=errors(400, 401, 404, 422),
    )
    async def update_watch(
        self,
        request: Request,
        data: JSONBody[WatchUpdateRequest],
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
    ) -> WatchSummary:
        ctx: WebContext = request.app.state.docora
        watch, repo = await _existing_watch(db, app, repository_id)
        if data.paths is msgspec.UNSET:
            return summary(watch, repo)
        path_filter = compile_filter(data.paths)
        if (path_filter.paths if path_filter else None) != watch.paths:
            async with db.transaction():
                await watches.set_paths(db, app.id, repository_id, path_filter)
                await ctx.queue.sync_now(db, repository_id)
        watch, repo = await _existing_watch(db, app, repository_id)
        return summary(watch, repo)
