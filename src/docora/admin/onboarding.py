"""Onboarding an app: the one path the REST API, the console's form and `docora apps create`
all take, so that a base_url is checked and a token is made the same way everywhere."""

from __future__ import annotations

from psycopg import AsyncConnection

from docora.bodies import OnboardRequest
from docora.config import Settings
from docora.crypto import SecretBox, client_key_context, new_app_token, token_digest
from docora.deliver.targets import check_target, normalize_base_url
from docora.ids import new_app_id
from docora.net import Resolver
from docora.store import apps
from docora.store.apps import AppRow


async def validated_base_url(settings: Settings, resolver: Resolver, text: str) -> str:
    """The base_url as stored, or InvalidInput (422) naming what is wrong with it."""
    allow = settings.allow_private_webhook_targets
    base_url = normalize_base_url(text, allow_private=allow)
    await check_target(base_url, allow_private=allow, resolver=resolver)
    return base_url


async def create_app_record(
    db: AsyncConnection, box: SecretBox, data: OnboardRequest, base_url: str
) -> tuple[AppRow, str]:
    """The app's row and its bearer token (shown once, stored as a digest)."""
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
