"""Background work on Procrastinate, in the same Postgres: tasks, schedules, the queue API."""
