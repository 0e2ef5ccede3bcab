"""Console sessions: a signed cookie naming a session row, a CSRF token per session.

The cookie holds a random id and its HMAC under ADMIN_SESSION_SECRET (or, when that is
unset, a key derived from ENCRYPTION_KEY, so every API process agrees without one more
secret to manage). Only the id's digest is stored; the row expires after an hour idle and
logout deletes it, so a copied cookie stops working with the session.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from docora.config import Settings
from docora.store import sessions

COOKIE = "docora_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
IDLE_S = 3600
LOGINS_PER_MINUTE = 5


def console_enabled(settings: Settings) -> bool:
    return bool(settings.admin_username and settings.admin_password)


def session_secret(settings: Settings) -> bytes:
    if settings.admin_session_secret:
        return settings.admin_session_secret.encode()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"docora console session")
    return hkdf.derive(settings.key_bytes)


def new_session() -> tuple[str, str]:
    """(session id, CSRF token)."""
    return secrets.token_urlsafe(32), secrets.token_urlsafe(32)


def session_digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode()).digest()


def _mac(secret: bytes, session_id: str) -> str:
    return hmac.new(secret, session_id.encode(), hashlib.sha256).hexdigest()


def sign(secret: bytes, session_id: str) -> str:
    return f"{session_id}.{_mac(secret, session_id)}"


def unsign(secret: bytes, value: str | None) -> str | None:
    """The session id of a cookie whose signature holds, else None."""
    if not value:
        return None
    session_id, _, mac = value.rpartition(".")
    if not session_id or not hmac.compare_digest(mac, _mac(secret, session_id)):
        return None
    return session_id


def csrf_matches(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def cookie_is_secure(scheme: str, client_host: str | None) -> bool:
    """Secure, except over plain http to loopback (a developer's machine): a browser would
    not send a Secure cookie back over http, and nothing else is on the wire there."""
    if scheme == "https":
        return True
    try:
        return not ipaddress.ip_address(client_host or "").is_loopback
    except ValueError:
        return True


async def session_of(db, settings: Settings, cookie: str | None):
    """The live session a cookie names (touching it), or None."""
    if not console_enabled(settings):
        return None
    session_id = unsign(session_secret(settings), cookie)
    if session_id is None:
        return None
    return await sessions.touch_session(db, session_digest(session_id), IDLE_S)
