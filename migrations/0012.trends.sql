-- depends: 0011.lfs-content
-- Trends for the console's charts (issue 20): per-minute rollups that stay small however
-- long the delivery log grows, kept by the statements that write what they count, and a
-- row per sync. All three are pruned after METRICS_RETENTION_DAYS.

-- Delivery attempts per minute, app and latency bucket: the count of each outcome, and
-- through the bucket (docora_latency_bucket) the distribution the percentiles come from.
-- Written in the same statement as the delivery-log rows they count. No foreign key: the
-- system's counts outlive a deleted app, as docora_deliveries_total does.
CREATE TABLE delivery_minutes (
    minute     timestamptz NOT NULL,
    app_id     text NOT NULL,
    bucket     smallint NOT NULL,
    delivered  integer NOT NULL DEFAULT 0,
    failed     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, app_id, bucket)
);
CREATE INDEX delivery_minutes_app_idx ON delivery_minutes (app_id, minute);

-- The latency buckets' upper bounds in ms (the HTTP histogram's, docora.metrics): bucket k
-- holds [bound k-1, bound k), bucket 0 below 5 ms, bucket 12 from 30 s.
CREATE FUNCTION docora_latency_bucket(latency_ms integer)
RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT width_bucket(latency_ms,
        ARRAY[5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000])::smallint
$$;

-- Rescan checks per minute, recorded with each batch of outcomes: how many, and how long
-- the oldest check of the minute had been due when it was claimed.
CREATE TABLE check_minutes (
    minute       timestamptz PRIMARY KEY,
    unchanged    integer NOT NULL DEFAULT 0,
    changed      integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    max_lag_ms   integer NOT NULL DEFAULT 0
);

-- One row per sync job that ran (skipped ones, circuit open, are not syncs).
CREATE TABLE sync_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id  text NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    duration_ms    integer NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('synced', 'unchanged', 'failed')),
    commit_sha     text
);
CREATE INDEX sync_runs_repository_idx ON sync_runs (repository_id, finished_at);
CREATE INDEX sync_runs_finished_idx ON sync_runs (finished_at);

-- The log's history, within the default retention, counted once.
INSERT INTO delivery_minutes (minute, app_id, bucket, delivered, failed)
SELECT date_trunc('minute', created_at), app_id, docora_latency_bucket(latency_ms),
       count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'failed')
FROM deliveries WHERE created_at > now() - interval '14 days'
GROUP BY 1, 2, 3;
