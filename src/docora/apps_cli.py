"""`docora apps …`: onboarding and listing without the HTTP API, same rules as the API."""

from __future__ import annotations

import argparse

import msgspec
import psycopg

from docora.api.apps import create_app_record
from docora.api.models import OnboardRequest, OnboardResponse
from docora.config import Settings
from docora.crypto import SecretBox
from docora.deliver.targets import check_target, normalize_base_url
from docora.errors import InvalidInput
from docora.store import apps
from docora.store.apps import AppRow


async def create_app_from_cli(
    settings: Settings, args: argparse.Namespace, client_auth_key: str
) -> OnboardResponse:
    try:
        request = msgspec.convert(
            {
                "app_name": args.name,
                "base_url": args.base_url,
                "email": args.email,
                "client_auth_key": client_auth_key,
                "website": args.website,
                "description": args.description,
                "delivery_concurrency": args.delivery_concurrency,
                "delivery_mode": args.delivery_mode,
            },
            OnboardRequest,
        )
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc).replace("$.", "")) from None
    allow = settings.allow_private_webhook_targets
    base_url = normalize_base_url(request.base_url, allow_private=allow)
    await check_target(base_url, allow_private=allow)
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as db:
        row, token = await create_app_record(db, SecretBox(settings.key_bytes), request, base_url)
    return OnboardResponse(app_id=row.id, token=token, created_at=row.created_at)


async def list_apps_from_cli(settings: Settings) -> list[AppRow]:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as db:
        return await apps.list_apps(db)
