"""`docora apps …`: onboarding and listing without the HTTP API, same rules as the API."""

from __future__ import annotations

import argparse

import msgspec
import psycopg

from docora.admin.onboarding import create_app_record, validated_base_url
from docora.bodies import OnboardRequest, OnboardResponse
from docora.config import Settings
from docora.crypto import SecretBox
from docora.errors import InvalidInput
from docora.net import system_resolver
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
    base_url = await validated_base_url(settings, system_resolver, request.base_url)
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as db:
        row, token = await create_app_record(db, SecretBox(settings.key_bytes), request, base_url)
    return OnboardResponse(app_id=row.id, token=token, created_at=row.created_at)


async def list_apps_from_cli(settings: Settings) -> list[AppRow]:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as db:
        return await apps.list_apps(db)
