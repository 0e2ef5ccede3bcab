"""Procrastinate's baseline schema, from the installed procrastinate package.

Applied only when its tables are absent, so a database prepared by
`procrastinate schema --apply` beforehand is adopted as it is. Procrastinate's later
schema changes are its own SQL scripts, recorded and applied by docora.migrate.
"""

from procrastinate.schema import SchemaManager
from yoyo import step

__depends__ = {"0001.docora-schema"}


def apply_schema(conn):
    cursor = conn.cursor()
    cursor.execute("SELECT to_regclass('procrastinate_jobs')")
    if cursor.fetchone()[0] is None:
        cursor.execute(SchemaManager.get_schema())
    # Docora looks up waiting jobs by lock before deferring (see docora.jobs.queue).
    cursor.execute(
        "CREATE INDEX IF NOT EXISTS docora_jobs_waiting_lock_idx "
        "ON procrastinate_jobs (lock) WHERE status = 'todo'"
    )


steps = [step(apply_schema)]
