"""Schema migrations with yoyo: Docora's tables, then Procrastinate's schema and its upgrades.

Procrastinate ships a baseline (`schema.sql`, its whole current schema) and one SQL script
per schema change since. A new database gets the baseline (migrations/0002) and every
script the baseline already contains is recorded as applied. From then on each
Procrastinate upgrade brings scripts yoyo has not recorded, and `docora migrate` applies
them in order, each in its own transaction, under yoyo's lock, like Docora's own.

Databases migrated by Docora before scripts were recorded got a baseline of some 3.x
release; which scripts it contains is read off the schema itself (LEGACY_PROBES).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import procrastinate
from yoyo import get_backend, read_migrations
from yoyo.migrations import Migration, MigrationList, StepCollector

from docora.errors import DocoraError

SCRIPT_PREFIX = "procrastinate:"
OLDEST_SUPPORTED = "03.00.00"


class SchemaError(DocoraError):
    """The database schema cannot be used by this Docora (behind, or unknown)."""


def migrations_dir() -> Path:
    # Editable installs and the container read the repository's folder; wheels carry a copy.
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "migrations", here / "migrations"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError("migrations folder not found next to the docora package")


def procrastinate_scripts_dir() -> Path:
    return Path(procrastinate.__file__).parent / "sql" / "migrations"


def yoyo_url(database_url: str) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql+psycopg", *parts[1:]))


class ScriptMigration(Migration):
    """One of Procrastinate's SQL scripts, run whole in one transaction: its function
    bodies hold semicolons that yoyo's statement splitter must not cut."""

    def load(self) -> None:
        if self.loaded:
            return
        self.source = Path(self.path).read_text(encoding="utf-8")
        collector = StepCollector(migration=self)
        collector.add_step(self.source)
        self._depends = set()
        self.steps = collector.create_steps(self.use_transactions)

    @property
    def version(self) -> str:
        return self.id.removeprefix(SCRIPT_PREFIX)


def procrastinate_migrations(scripts: Path | None = None) -> MigrationList:
    directory = scripts or procrastinate_scripts_dir()
    return MigrationList(
        ScriptMigration(SCRIPT_PREFIX + path.stem, str(path), str(directory))
        for path in sorted(directory.glob("*.sql"))
    )


# For each 3.x script: true when the schema already holds what it does. A database that
# Docora migrated before recording scripts has every script up to the newest true probe.
LEGACY_PROBES = {
    "03.00.00_01_pre_cancel_notification": """SELECT EXISTS (SELECT 1 FROM
        information_schema.columns WHERE table_name = 'procrastinate_jobs'
        AND column_name = 'abort_requested')""",
    "03.00.00_50_post_cancel_notification": """SELECT NOT EXISTS (SELECT 1 FROM pg_proc
        WHERE proname = 'procrastinate_finish_job')""",
    "03.01.00_01_pre_add_heartbeat": "SELECT to_regclass('procrastinate_workers') IS NOT NULL",
    "03.01.00_50_post_add_heartbeat": """SELECT NOT EXISTS (SELECT 1 FROM pg_proc
        WHERE proname = 'procrastinate_fetch_job_v1')""",
    "03.02.00_01_pre_batch_defer_jobs": """SELECT to_regtype('procrastinate_job_to_defer_v1')
        IS NOT NULL""",
    "03.02.00_50_post_batch_defer_jobs": """SELECT NOT EXISTS (SELECT 1 FROM pg_proc
        WHERE proname = 'procrastinate_defer_job_v1')""",
    "03.03.00_01_pre_priority_lock_fetch_job": """SELECT EXISTS (SELECT 1 FROM pg_proc
        WHERE proname = 'procrastinate_fetch_job_v2'
        AND prosrc LIKE '%other_jobs.priority > jobs.priority%')""",
    "03.04.00_01_pre_add_retry_failed_job_procedure": """SELECT EXISTS (SELECT 1 FROM pg_proc
        WHERE proname = 'procrastinate_retry_job_v2')""",
    "03.04.00_50_post_add_retry_failed_job_procedure": """SELECT EXISTS (SELECT 1 FROM pg_proc
        WHERE proname = 'procrastinate_trigger_function_status_events_update_v1'
        AND prosrc LIKE '%retried%')""",
}


def legacy_applied(cursor, scripts: MigrationList) -> list[ScriptMigration]:
    """The scripts a database migrated before recording already contains."""
    newest = None
    for version, probe in LEGACY_PROBES.items():
        cursor.execute(probe)
        if cursor.fetchone()[0]:
            newest = version
    if newest is None:
        raise SchemaError(
            f"the Procrastinate schema predates {OLDEST_SUPPORTED}, which Docora never "
            "installed; upgrade it with Procrastinate's own migration scripts first"
        )
    return [script for script in scripts if script.version <= newest]


def _has_queue_tables(backend) -> bool:
    cursor = backend.cursor()
    cursor.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
    return bool(cursor.fetchone()[0])


def apply_migrations(database_url: str, *, procrastinate_scripts: Path | None = None) -> int:
    """Apply every pending migration under yoyo's lock; return how many were applied."""
    backend = get_backend(yoyo_url(database_url))
    ours = read_migrations(str(migrations_dir()))
    scripts = procrastinate_migrations(procrastinate_scripts)
    with backend.lock():
        had_queue = _has_queue_tables(backend)
        pending = backend.to_apply(ours)
        backend.apply_migrations(pending)
        unrecorded = backend.to_apply(scripts)
        if len(unrecorded) == len(scripts):
            # Either the baseline was just applied (it holds every script shipped with
            # it), or the database predates recording: read off what it holds.
            contained = legacy_applied(backend.cursor(), scripts) if had_queue else scripts
            backend.mark_migrations(contained)
        upgrades = backend.to_apply(scripts)
        backend.apply_migrations(upgrades)
    return len(pending) + len(upgrades)


def pending_migrations(
    database_url: str, *, procrastinate_scripts: Path | None = None
) -> list[str]:
    """Ids of migrations this Docora has that the database lacks (empty: up to date)."""
    backend = get_backend(yoyo_url(database_url))
    ours = read_migrations(str(migrations_dir()))
    scripts = procrastinate_migrations(procrastinate_scripts)
    pending = [m.id for m in backend.to_apply(ours)]
    unrecorded = backend.to_apply(scripts)
    if len(unrecorded) < len(scripts):
        pending.extend(m.id for m in unrecorded)
    else:  # a new database, or one from before scripts were recorded: migrate adopts it
        pending.append("recording of Procrastinate's schema scripts")
    return pending


def check_schema(database_url: str, *, procrastinate_scripts: Path | None = None) -> None:
    """Refuse to start on a database whose schema is behind this Docora."""
    pending = pending_migrations(database_url, procrastinate_scripts=procrastinate_scripts)
    if pending:
        more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        shown = ", ".join(pending[:3]) + more
        raise SchemaError(
            f"the database schema is behind this Docora ({len(pending)} pending: {shown}); "
            "run `docora migrate`"
        )
