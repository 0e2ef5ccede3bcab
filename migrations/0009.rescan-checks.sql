-- depends: 0008.path-filters
-- No-change checks without a job each (SPEC 12): workers claim due watches in batches and
-- record "unchanged" for a whole batch in one statement.

-- docora_rescans_total{outcome}: kept in Postgres so that every process reports the same
-- numbers. One row per outcome: a batch adds to each at most once.
CREATE TABLE rescan_totals (
    outcome  text PRIMARY KEY CHECK (outcome IN ('unchanged', 'changed', 'failed')),
    n        bigint NOT NULL DEFAULT 0
);
INSERT INTO rescan_totals (outcome) VALUES ('unchanged'), ('changed'), ('failed');

-- When a repository is next checked: the next instant after now() that falls on the
-- repository's own phase of the interval (a hash of its id). Checks of many repositories
-- are thus spread evenly over the interval whenever they were registered or synced, a
-- repository is checked again at most one interval after anything, and a steady one
-- exactly once per interval.
CREATE FUNCTION docora_next_check(repository_id text, interval_ms bigint)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT now() + (interval_ms - (((floor(extract(epoch FROM now()) * 1000)::bigint
            - (hashtextextended(repository_id, 0) & 9223372036854775807) % interval_ms)
            % interval_ms + interval_ms) % interval_ms)) * interval '1 millisecond'
$$;
