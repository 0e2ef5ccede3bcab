"""Local mode (no DATABASE_URL): ./.docora holds the embedded Postgres and dev secrets."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from docora.crypto import generate_encryption_key
from docora.db import embedded_postgres

STATE_DIR = Path(".docora")
SECRETS_FILE = "secrets.env"


def ensure_dev_secrets(state_dir: Path = STATE_DIR) -> dict[str, str]:
    """ENCRYPTION_KEY and ADMIN_TOKEN, generated once and kept so restarts can decrypt."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SECRETS_FILE
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
    changed = False
    if "ENCRYPTION_KEY" not in values:
        values["ENCRYPTION_KEY"], changed = generate_encryption_key(), True
    if "ADMIN_TOKEN" not in values:
        values["ADMIN_TOKEN"], changed = "admin_" + secrets.token_hex(24), True
    # The console's login (plain here: this file is already the developer's secret).
    if "ADMIN_USERNAME" not in values or "ADMIN_PASSWORD" not in values:
        values["ADMIN_USERNAME"] = "admin"
        values["ADMIN_PASSWORD"], changed = secrets.token_urlsafe(12), True
    if changed:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{k}={v}\n" for k, v in values.items())
    return values


def apply_local_defaults(env: MutableMapping[str, str], state_dir: Path = STATE_DIR) -> None:
    """Fill what a developer's machine lacks; explicit environment values always win."""
    for key, value in ensure_dev_secrets(state_dir).items():
        env.setdefault(key, value)
    env.setdefault("REPOS_BASE_PATH", str(state_dir / "repos"))
    env.setdefault("ALLOW_LOCAL_REPOSITORIES", "true")
    env.setdefault("ALLOW_PRIVATE_WEBHOOK_TARGETS", "true")


@contextlib.contextmanager
def database_url(env: MutableMapping[str, str], state_dir: Path = STATE_DIR) -> Iterator[str]:
    """DATABASE_URL when set; otherwise the embedded server kept in state_dir/pgdata."""
    if env.get("DATABASE_URL"):
        yield env["DATABASE_URL"]
        return
    with embedded_postgres((state_dir / "pgdata").resolve(), keep=True) as url:
        env["DATABASE_URL"] = url
        yield url
