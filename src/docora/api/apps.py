"""Onboarding and the calling app's own profile."""

from __future__ import annotations

from typing import ClassVar

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from psycopg import AsyncConnection

from docora.api.auth import ADMIN_SECURITY, BEARER_SECURITY, admin_guard
from docora.api.context import ApiContext
from docora.api.models import (
    AppProfile,
    AppUpdateRequest,
    OnboardRequest,
    OnboardResponse,
)
from docora.api.responses import errors
from docora.crypto import SecretBox, client_key_context, new_app_token, token_digest
from docora.deliver.targets import check_target, normalize_base_url
from docora.ids import new_app_id
from docora.store import apps
from docora.store.apps import AppRow


async def validated_base_url(ctx: ApiContext, text: str) -> str:
    """The base_url as stored, or InvalidInput (422) naming what is wrong with it."""
    allow = ctx.settings.allow_private_webhook_targets
    base_url = normalize_base_url(text, allow_private=allow)
    await check_target(base_url, allow_private=allow, resolver=ctx.resolver)
    return base_url


def profile(row: AppRow) -> AppProfile:
    return AppProfile(
        app_id=row.id,
        app_name=row.name,
        base_url=row.base_url,
        email=row.email,
        website=row.website,
        description=row.description,
        delivery_concurrency=row.delivery_concurrency,
        delivery_mode=row.delivery_mode,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def create_app_record(
    db: AsyncConnection, box: SecretBox, data: OnboardRequest, base_url: str
) -> tuple[AppRow, str]:
    """Shared by the HTTP onboarding route and `docora apps create`."""
    app_id, token = new_app_id(), new_app_token()
    row = await apps.insert_app(
        db,
        id=app_id,
        name=data.app_name.strip(),
        base_url=base_url,
        email=data.email,
        website=data.website,
        description=data.description,
        token_digest=token_digest(token),
        client_auth_key_enc=box.encrypt(data.client_auth_key, context=client_key_context(app_id)),
        delivery_concurrency=data.delivery_concurrency,
        delivery_mode=data.delivery_mode,
    )
    return row, token


class OnboardingController(Controller):
    path = "/api/apps"
    tags: ClassVar[list[str]] = ["apps"]

    @post(
        "/onboard",
        status_code=201,
        guards=[admin_guard],
        security=ADMIN_SECURITY,
        summary="Onboard a client app (admin)",
        description="Creates an app and returns its bearer token, shown only this once.",
        responses=errors(400, 401, 403, 413, 422),
    )
    async def onboard(
        self, request: Request, data: JSONBody[OnboardRequest], db: NamedDependency[AsyncConnection]
    ) -> OnboardResponse:
        ctx: ApiContext = request.app.state.docora
        base_url = await validated_base_url(ctx, data.base_url)
        row, token = await create_app_record(db, ctx.box, data, base_url)
        return OnboardResponse(app_id=row.id, token=token, created_at=row.created_at)

    @get(
        "/me",
        security=BEARER_SECURITY,
        summary="The calling app's profile",
        responses=errors(401),
    )
    async def me(self, app: NamedDependency[AppRow]) -> AppProfile:
        return profile(app)

    @patch(
        "/me",
        security=BEARER_SECURITY,
        summary="Change base_url, delivery_concurrency, delivery_mode, or rotate client_auth_key",
        responses=errors(400, 401, 413, 422),
    )
    async def update_me(
        self,
        request: Request,
        data: JSONBody[AppUpdateRequest],
        app: NamedDependency[AppRow],
        db: NamedDependency[AsyncConnection],
    ) -> AppProfile:
        ctx: ApiContext = request.app.state.docora
        if (
            data.base_url is None
            and data.delivery_concurrency is None
            and data.delivery_mode is None
            and data.client_auth_key is None
        ):
            return profile(app)  # nothing to change: the schema allows an empty patch
        base_url = await validated_base_url(ctx, data.base_url) if data.base_url else None
        key_enc = (
            ctx.box.encrypt(data.client_auth_key, context=client_key_context(app.id))
            if data.client_auth_key
            else None
        )
        row = await apps.update_app(
            db,
            app.id,
            base_url=base_url,
            delivery_concurrency=data.delivery_concurrency,
            delivery_mode=data.delivery_mode,
            client_auth_key_enc=key_enc,
        )
        return profile(row)
