"""A real Postgres for the tests: DATABASE_URL when set, else an embedded server."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg

PROJECT_TABLES = (
    "deliveries",
    "delivered_files",
    "snapshot_skipped",
    "blob_facts",
    "snapshot_files",
    "snapshots",
    "watches",
    "repositories",
    "apps",
)
QUEUE_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def create_database(server_url: str) -> str:
    name = "docora_test_" + secrets.token_hex(4)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = ", ".join(PROJECT_TABLES + QUEUE_TABLES)
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
