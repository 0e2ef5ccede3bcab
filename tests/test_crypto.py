import base64
import re

import pytest

from docora.crypto import (
    DecryptionError,
    InvalidKeyError,
    SecretBox,
    new_app_token,
    parse_encryption_key,
    secret_matches,
    token_digest,
)
from docora.ids import new_app_id, repository_id

KEY = bytes(range(32))


def test_round_trip_and_random_nonce():
    box = SecretBox(KEY)
    a = box.encrypt("ghp_secret", context="ctx")
    b = box.encrypt("ghp_secret", context="ctx")
    assert a != b  # a fresh nonce each time
    assert b"ghp_secret" not in a
    assert box.decrypt(a, context="ctx") == "ghp_secret"


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_tampering_is_detected(position):
    box = SecretBox(KEY)
    blob = bytearray(box.encrypt("value", context="ctx"))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError):
        box.decrypt(bytes(blob), context="ctx")


def test_wrong_context_or_key_fails():
    blob = SecretBox(KEY).encrypt("value", context="apps:1")
    with pytest.raises(DecryptionError):
        SecretBox(KEY).decrypt(blob, context="apps:2")
    with pytest.raises(DecryptionError):
        SecretBox(bytes(32)).decrypt(blob, context="apps:1")


def test_key_formats():
    assert parse_encryption_key(KEY.hex()) == KEY
    assert parse_encryption_key(base64.b64encode(KEY).decode()) == KEY
    for bad in ("", "abc", KEY.hex()[:-2], base64.b64encode(KEY[:31]).decode()):
        with pytest.raises(InvalidKeyError):
            parse_encryption_key(bad)


def test_tokens_and_ids():
    token = new_app_token()
    assert re.fullmatch(r"docora_[0-9a-f]{64}", token)
    assert len(token_digest(token)) == 32
    assert secret_matches(token, token) and not secret_matches(token, token + "x")
    assert re.fullmatch(r"app_[0-9a-f]{24}", new_app_id())
    rid = repository_id("https://github.com/a/b", "main")
    assert re.fullmatch(r"repo_[0-9a-f]{24}", rid)
    assert rid == repository_id("https://github.com/a/b", "main")
    assert rid != repository_id("https://github.com/a/b", "dev")
