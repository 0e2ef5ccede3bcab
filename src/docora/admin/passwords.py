"""The console password: ADMIN_PASSWORD is plain text, a scrypt hash made by
`docora hash-password`, or an argon2 hash (`$argon2id$...`, e.g. from argon2-cffi)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_PREFIX = "scrypt$"
# OWASP's scrypt floor (N=2^17, r=8, p=1): about 0.1-0.2 s and 128 MiB per check.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_MAXMEM = 256 * 1024 * 1024


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`, salt and hash in base64."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"{SCRYPT_PREFIX}{SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encoded[0]}${encoded[1]}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def password_matches(given: str, stored: str) -> bool:
    """Constant-time for plain text; a hash costs what it costs whatever the input."""
    if stored.startswith(SCRYPT_PREFIX):
        try:
            n, r, p, salt, expected = stored.removeprefix(SCRYPT_PREFIX).split("$")
            digest = _scrypt(given, base64.b64decode(salt), int(n), int(r), int(p))
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(digest, base64.b64decode(expected))
    if stored.startswith("$argon2"):
        from argon2 import PasswordHasher
        from argon2.exceptions import Argon2Error, InvalidHashError

        try:
            return PasswordHasher().verify(stored, given)
        except (Argon2Error, InvalidHashError):
            return False
    given_digest = hashlib.sha256(given.encode()).digest()
    return hmac.compare_digest(given_digest, hashlib.sha256(stored.encode()).digest())


def valid_hash(stored: str) -> bool:
    """Whether a hashed ADMIN_PASSWORD can be read (checked at startup)."""
    if stored.startswith(SCRYPT_PREFIX):
        parts = stored.removeprefix(SCRYPT_PREFIX).split("$")
        try:
            int(parts[0]), int(parts[1]), int(parts[2])
            base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
        except (ValueError, IndexError):
            return False
        return len(parts) == 5
    if stored.startswith("$argon2"):
        from argon2 import extract_parameters
        from argon2.exceptions import InvalidHashError

        try:
            extract_parameters(stored)
        except InvalidHashError:
            return False
    return True
