"""The webhooks Docora sends, described in the OpenAPI 3.1 `webhooks` section so that client
apps can generate receivers. The body schemas come from the msgspec structs that build the
bodies (deliver/payloads.py): what is documented is what is sent."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Schema,
)

from docora.deliver.payloads import (
    BatchBody,
    CreateEvent,
    DeleteEvent,
    SyncFailedEvent,
    UpdateEvent,
)

_HEADERS = {
    "X-Docora-App-Id": "The app id.",
    "X-Docora-Timestamp": "Unix seconds, decimal.",
    "X-Docora-Signature": "`sha256=` + hex HMAC-SHA256(client_auth_key, `{timestamp}.{body}`).",
    "X-Docora-Event": "create, update, delete, sync_failed or batch.",
    "X-Docora-Delivery": "Delivery id, the same on every retry of this request.",
    "webhook-id": "Standard Webhooks: the delivery id.",
    "webhook-timestamp": "Standard Webhooks: Unix seconds.",
    "webhook-signature": "Standard Webhooks: `v1,` + base64 HMAC-SHA256 over "
    "`{id}.{timestamp}.{body}`, secret `whsec_` + base64(client_auth_key).",
}

_WEBHOOKS: dict[str, tuple[type[msgspec.Struct], str]] = {
    "create": (CreateEvent, "A file appeared (or the app's first sync): its whole content."),
    "update": (UpdateEvent, "A file's content changed; `previous_sha` is what the app held."),
    "delete": (DeleteEvent, "A file is gone from the branch (or from the watch's paths)."),
    "sync_failed": (SyncFailedEvent, "The repository's circuit breaker opened."),
    "batch": (
        BatchBody,
        "Apps in `batch` delivery mode: up to BATCH_MAX_EVENTS events in order; a 2xx "
        "acknowledges them all. Chunked binaries still come as single `create`/`update`.",
    ),
}


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """The schema with every `$ref` to its `$defs` replaced by the definition itself (the
    bodies are not recursive), so each webhook's schema stands alone in the document."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    return node


def body_schema(model: type[msgspec.Struct]) -> dict[str, Any]:
    schema = msgspec.json.schema(model)
    definitions = schema.pop("$defs", {})
    return _inlined(schema, definitions)


def _operation(event: str, model: type[msgspec.Struct], description: str) -> PathItem:
    headers = [
        Parameter(
            name=name,
            param_in="header",
            required=True,
            description=text,
            schema=Schema(type=OpenAPIType.STRING),
        )
        for name, text in _HEADERS.items()
    ]
    return PathItem(
        post=Operation(
            summary=f"POST {{base_url}}/{event}",
            description=description,
            operation_id=f"webhook_{event}",
            parameters=headers,  # type: ignore[arg-type]
            request_body=RequestBody(
                required=True,
                content={"application/json": OpenAPIMediaType(schema=body_schema(model))},  # type: ignore[arg-type]
            ),
            responses={
                "2XX": OpenAPIResponse(description="Acknowledged: recorded, never sent again"),
                "default": OpenAPIResponse(
                    description="Not acknowledged: retried with backoff (SPEC 4)"
                ),
            },
        )
    )


def outgoing_webhooks() -> dict[str, PathItem]:
    return {event: _operation(event, model, text) for event, (model, text) in _WEBHOOKS.items()}
