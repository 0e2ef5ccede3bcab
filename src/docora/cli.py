"""The `docora` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import threading
from collections.abc import Sequence

from docora import __version__
from docora.config import Settings, load_settings
from docora.errors import ConfigError, DocoraError

# The service's modules (uvicorn, Litestar, Procrastinate, psycopg) are imported by the
# commands that need them, so that `--help` is instant and a SIGTERM that arrives while
# they load is already handled (see main()).


def _settings(env: dict[str, str], *, require: tuple[str, ...] = ()) -> Settings:
    return load_settings(env, require=require)


def _production_env() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        raise ConfigError("DATABASE_URL is required (run `docora dev` for a local setup)")
    return env


def cmd_migrate(args: argparse.Namespace) -> int:
    from docora.migrate import apply_migrations

    settings = _settings(_production_env(), require=("DATABASE_URL",))
    count = apply_migrations(settings.database_url)
    print(f"migrations applied: {count}" if count else "database is up to date")
    return 0


class StopRequested(BaseException):
    """SIGTERM while the command is still loading: nothing to drain yet."""


def _stop_during_startup(signum, frame) -> None:
    raise StopRequested()


def _run(settings: Settings, *, api: bool, worker: bool, banner=None) -> int:
    from docora.logs import configure_logging
    from docora.runtime import EXIT_DEADLINE_MARGIN_S, arm_exit_deadline, serve

    configure_logging(settings.log_level, settings.log_format)
    # From here on a SIGTERM is only noted, and serve() acts on it once its own handlers
    # are in place: an exception raised at a random point inside asyncio's start-up
    # could leave it half set up.
    noted = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: noted.set())
    asyncio.run(
        serve(
            settings,
            api=api,
            worker=worker,
            on_ready=banner,
            signalled_before=noted.is_set,
            deadline_on_signal=True,
        )
    )
    # Drained. Only the interpreter's own exit is left, and CPython puts the default
    # SIGTERM action back during it: a late signal would turn this clean exit into a kill.
    # An ignored signal stays ignored; the deadline still bounds the exit.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    arm_exit_deadline(EXIT_DEADLINE_MARGIN_S)
    return 0


def _service_settings() -> Settings:
    """Settings of a service process, on a database whose schema is not behind."""
    settings = _settings(_production_env(), require=("ENCRYPTION_KEY",))
    import psycopg

    from docora.migrate import check_schema

    try:
        check_schema(settings.database_url)
    except psycopg.OperationalError as exc:  # Postgres is not up yet
        # The service waits for Postgres by itself; the schema is checked again at the
        # next start. Starting before the database is a supported order (compose).
        print(
            f"docora: schema not checked, database unreachable ({type(exc).__name__})",
            file=sys.stderr,
        )
    return settings


def cmd_api(args: argparse.Namespace) -> int:
    return _run(_service_settings(), api=True, worker=False)


def cmd_worker(args: argparse.Namespace) -> int:
    return _run(_service_settings(), api=False, worker=True)


def cmd_all(args: argparse.Namespace) -> int:
    return _run(_service_settings(), api=True, worker=True)


def cmd_dev(args: argparse.Namespace) -> int:
    from docora.local import apply_local_defaults, database_url
    from docora.migrate import apply_migrations

    env = dict(os.environ)
    if args.port:
        env["PORT"] = str(args.port)
    env.setdefault("HOST", "127.0.0.1")
    apply_local_defaults(env)
    with database_url(env):
        settings = _settings(env, require=("ENCRYPTION_KEY",))
        apply_migrations(settings.database_url)

        def banner() -> None:
            base = f"http://{settings.host}:{settings.port}"
            print(
                f"\nDocora {__version__} is running (api + worker, embedded Postgres)\n"
                f"  API:          {base}/api\n"
                f"  OpenAPI UI:   {base}/schema\n"
                f"  Health:       {base}/health\n"
                f"  Admin token:  {settings.admin_token}\n"
                f"  Console:      {base}/admin  (user {settings.admin_username}, "
                f"password {settings.admin_password})\n"
                f"  Data:         ./.docora (Ctrl+C to stop)\n",
                flush=True,
            )

        return _run(settings, api=True, worker=True, banner=banner)


def cmd_hash_password(args: argparse.Namespace) -> int:
    """A hash for ADMIN_PASSWORD; the password comes from stdin (or a prompt), never argv."""
    import getpass

    from docora.admin.passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Console password: ")
        if getpass.getpass("Again: ") != password:
            print("docora: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        print("docora: use a password of at least 12 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from docora.demo import run_demo

    return run_demo(keep_running=args.keep_running, port=args.port, batch=args.batch)


def _apps_env() -> dict[str, str]:
    from docora.local import apply_local_defaults

    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        apply_local_defaults(env)
    return env


def cmd_apps_create(args: argparse.Namespace) -> int:
    from docora.apps_cli import create_app_from_cli
    from docora.local import database_url

    env = _apps_env()
    key = sys.stdin.readline().strip() if args.client_auth_key_stdin else secrets.token_hex(32)
    with database_url(env):
        settings = _settings(env, require=("ENCRYPTION_KEY",))
        result = asyncio.run(create_app_from_cli(settings, args, key))
    print(f"app_id:          {result.app_id}")
    print(f"token:           {result.token}   (shown once)")
    if not args.client_auth_key_stdin:
        print(f"client_auth_key: {key}   (shown once)")
    return 0


def cmd_apps_list(args: argparse.Namespace) -> int:
    from docora.apps_cli import list_apps_from_cli
    from docora.local import database_url

    env = _apps_env()
    with database_url(env):
        settings = _settings(env)
        rows = asyncio.run(list_apps_from_cli(settings))
    if not rows:
        print("no apps")
    for row in rows:
        print(
            f"{row.id}  {row.name!r:30}  {row.base_url}  concurrency={row.delivery_concurrency}"
            f"  mode={row.delivery_mode}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import psycopg

    from docora.local import database_url
    from docora.status_cli import as_json, as_text, read_status

    env = _apps_env()
    with database_url(env):
        settings = _settings(env)
        try:
            report = asyncio.run(read_status(settings, limit=args.limit))
        except psycopg.OperationalError as exc:
            # The class only: the message may name the server.
            print(f"docora: database unreachable ({type(exc).__name__})", file=sys.stderr)
            return 2
    print(as_json(report) if args.json else as_text(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docora",
        description="Docora watches git repositories and pushes file changes as signed webhooks.",
    )
    parser.add_argument("--version", action="version", version=f"docora {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add(
        "migrate",
        cmd_migrate,
        "Apply all migrations (tables and Procrastinate's schema); idempotent",
    )
    add("api", cmd_api, "Serve the REST API")
    add("worker", cmd_worker, "Run a worker: sync and delivery jobs plus the periodic scheduler")
    add("all", cmd_all, "Run the API and a worker in one process")
    dev = add(
        "dev",
        cmd_dev,
        "Local setup: embedded Postgres in ./.docora, migrations, api + worker; "
        "local repositories and loopback webhooks allowed",
    )
    dev.add_argument("--port", type=int, help="API port (default: PORT or 3000)")
    demo = add(
        "demo",
        cmd_demo,
        "Everything in a temporary directory: embedded Postgres, a sample repository, a "
        "signature-verifying receiver; shows the initial sync and a commit's events",
    )
    demo.add_argument("--keep-running", action="store_true", help="stay up after the demo")
    demo.add_argument("--port", type=int, help="API port (default: a free one)")
    demo.add_argument(
        "--batch", action="store_true", help="the demo app takes batch requests (SPEC 11)"
    )

    add(
        "hash-password",
        cmd_hash_password,
        "Print a scrypt hash of a console password (read from stdin or a prompt) "
        "for ADMIN_PASSWORD",
    )
    status = add(
        "status",
        cmd_status,
        "The overview and the failing watches, read from Postgres as the console reads them",
    )
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.add_argument(
        "--limit",
        type=int,
        default=20,
        choices=range(1, 201),
        metavar="N",
        help="failing watches to list (1-200, default 20)",
    )
    apps = sub.add_parser(
        "apps", help="Operator commands for client apps", description="Manage client apps"
    )
    apps_sub = apps.add_subparsers(dest="apps_command", required=True, metavar="ACTION")
    create = apps_sub.add_parser(
        "create",
        help="Onboard an app without the HTTP API",
        description="Onboard an app; prints its token once",
    )
    create.set_defaults(func=cmd_apps_create)
    create.add_argument("--name", required=True, help="app name (3-100 chars)")
    create.add_argument("--base-url", required=True, help="webhook base URL")
    create.add_argument("--email", required=True)
    create.add_argument("--website")
    create.add_argument("--description")
    create.add_argument("--delivery-concurrency", type=int, default=1)
    create.add_argument("--delivery-mode", choices=("single", "batch"), default="single")
    create.add_argument(
        "--client-auth-key-stdin",
        action="store_true",
        help="read the signing key from stdin (never pass secrets as arguments); "
        "by default a random key is generated and printed once",
    )
    listing = apps_sub.add_parser("list", help="List apps", description="List onboarded apps")
    listing.set_defaults(func=cmd_apps_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # While a command is still loading, a SIGTERM simply ends it (services: see _run).
    signal.signal(signal.SIGTERM, _stop_during_startup)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"docora: configuration error: {exc}", file=sys.stderr)
        return 2
    except DocoraError as exc:  # bad input to a command (apps create): say what is wrong
        print(f"docora: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except StopRequested:
        return 0


if __name__ == "__main__":
    sys.exit(main())
