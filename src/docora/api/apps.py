"""Onboarding and the calling app's own profile."""

from __future__ import annotations

from typing import ClassVar

from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from psycopg import AsyncConnection

from docora.admin.onboarding import create_app_record, validated_base_url
from docora.api.auth import ADMIN_SECURITY, BEARER_SECURITY, admin_guard
from docora.api.models import AppUpdateRequest
from docora.api.responses import errors
from docora.bodies import AppProfile, OnboardRequest, OnboardResponse, profile
from docora.crypto import client_key_context
from docora.store import apps
from docora.store.apps import AppRow
from docora.web.context import WebContext


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
        ctx: WebContext = request.app.state.docora
        base_url = await validated_base_url(ctx.settings, ctx.resolver, data.base_url)
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
        ctx: WebContext = request.app.state.docora
        if (
            data.base_url is None
            and data.delivery_concurrency is None
            and data.delivery_mode is None
            and data.client_auth_key is None
        ):
            return profile(app)  # nothing to change: the schema allows an empty patch
        base_url = (
            await validated_base_url(ctx.settings, ctx.resolver, data.base_url)
            if data.base_url
            else None
        )
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
