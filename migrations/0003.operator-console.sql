-- depends: 0002.procrastinate-schema
-- The operator API and console: sessions, bulk operations, and the indexes their lists use.

-- Console sessions. The cookie carries a random id (signed); only its digest is stored,
-- and logout deletes the row, so a copied cookie dies with the session.
CREATE TABLE admin_sessions (
    id_digest     bytea PRIMARY KEY,
    username      text NOT NULL,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_sessions_last_seen_idx ON admin_sessions (last_seen_at);

-- Bulk retry/resync over a set of watches fixed when the operation starts. A job works
-- through the items; each item's action, its outcome and the counters commit together,
-- so progress survives restarts and is exact.
CREATE TABLE operations (
    id                text PRIMARY KEY CHECK (id ~ '^op_[0-9a-f]{24}$'),
    action            text NOT NULL CHECK (action IN ('retry', 'resync')),
    app_id            text,
    status_filter     text,
    status            text NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'done', 'cancelled', 'failed')),
    total             integer NOT NULL,
    completed         integer NOT NULL DEFAULT 0,
    succeeded         integer NOT NULL DEFAULT 0,
    failed            integer NOT NULL DEFAULT 0,
    cancel_requested  boolean NOT NULL DEFAULT false,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX operations_app_idx ON operations (app_id, created_at DESC);

CREATE TABLE operation_items (
    operation_id   text NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    app_id         text NOT NULL,
    repository_id  text NOT NULL,
    outcome        text CHECK (outcome IN ('succeeded', 'failed')),
    PRIMARY KEY (operation_id, app_id, repository_id)
);

-- Operator lists: watches by status (failures across apps, overview counts, bulk
-- selection), apps by name or age, the delivery log by time.
CREATE INDEX watches_status_idx ON watches (status, app_id, repository_id);
CREATE INDEX watches_app_status_idx ON watches (app_id, status, repository_id);
CREATE INDEX apps_name_idx ON apps (lower(name), id);
CREATE INDEX apps_created_at_idx ON apps (created_at, id);
CREATE INDEX deliveries_created_at_idx ON deliveries (created_at);
CREATE INDEX repositories_cooldown_idx ON repositories (cooldown_until)
    WHERE cooldown_until IS NOT NULL;
-- The queue view: jobs by status, newest first.
CREATE INDEX docora_jobs_status_id_idx ON procrastinate_jobs (status, id DESC);
