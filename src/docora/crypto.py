"""Secrets at rest (AES-256-GCM) and bearer tokens (shown once, stored as a digest)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from docora.errors import ExpectedFailure

TOKEN_PREFIX = "docora_"
TOKEN_PATTERN = re.compile(r"^docora_[0-9a-f]{64}$")
_FORMAT_V1 = b"\x01"
_NONCE_BYTES = 12


class InvalidKeyError(ValueError):
    pass


class DecryptionError(ExpectedFailure):
    """The ciphertext was tampered with, or was written under another key or context."""


def parse_encryption_key(text: str) -> bytes:
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InvalidKeyError("ENCRYPTION_KEY must be 64 hex chars or base64 of 32 bytes")
    return key


def generate_encryption_key() -> str:
    return secrets.token_hex(32)


class SecretBox:
    """AES-256-GCM with a random nonce per value.

    `context` is bound as associated data, so a ciphertext copied to another
    row (another app's token column, say) fails to decrypt instead of leaking.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _FORMAT_V1 + nonce + sealed

    def decrypt(self, blob: bytes, *, context: str) -> str:
        if blob[:1] != _FORMAT_V1 or len(blob) < 1 + _NONCE_BYTES + 16:
            raise DecryptionError("unknown ciphertext format")
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, context.encode()).decode()
        except InvalidTag:
            raise DecryptionError("ciphertext failed authentication") from None


def client_key_context(app_id: str) -> str:
    return f"apps.client_auth_key:{app_id}"


def watch_token_context(app_id: str, repository_id: str) -> str:
    return f"watches.token:{app_id}:{repository_id}"


def new_app_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(32)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def digests_match(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def secret_matches(given: str, expected: str) -> bool:
    # Compare digests so that the time taken does not depend on the lengths either.
    return hmac.compare_digest(token_digest(given), token_digest(expected))
