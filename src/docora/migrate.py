"""Schema migrations with yoyo: the project's tables and Procrastinate's schema."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from yoyo import get_backend, read_migrations


def migrations_dir() -> Path:
    # Editable installs and the container read the repository's folder; wheels carry a copy.
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "migrations", here / "migrations"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("migrations folder not found next to the docora package")


def yoyo_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


def apply_migrations(database_url: str) -> int:
    """Apply every pending migration under yoyo's lock; return how many were applied."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(migrations_dir()))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return len(pending)
