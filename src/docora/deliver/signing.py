"""Request signatures: Docora's own header and Standard Webhooks'."""

from __future__ import annotations

import base64
import hashlib
import hmac


def docora_signature(key: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256(key, "{timestamp}.{body}")."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def standard_webhooks_signature(key: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 over "{id}.{timestamp}.{body}".

    The Standard Webhooks secret is `whsec_` + base64(key bytes), so their libraries
    verify with the same key the app registered.
    """
    message = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_webhooks_secret(key: str) -> str:
    return "whsec_" + base64.b64encode(key.encode()).decode()


def signed_headers(
    *, app_id: str, key: str, event: str, delivery_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    ts = str(timestamp)
    return {
        "Content-Type": "application/json",
        "X-Docora-App-Id": app_id,
        "X-Docora-Timestamp": ts,
        "X-Docora-Signature": docora_signature(key, ts, body),
        "X-Docora-Event": event,
        "X-Docora-Delivery": delivery_id,
        "webhook-id": delivery_id,
        "webhook-timestamp": ts,
        "webhook-signature": standard_webhooks_signature(key, delivery_id, ts, body),
    }
