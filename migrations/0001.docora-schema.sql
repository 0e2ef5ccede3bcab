-- The project's tables. Paths use the "C" collation so that ORDER BY path is
-- byte order, the order the wire format promises.

CREATE TABLE apps (
    id                    text PRIMARY KEY CHECK (id ~ '^app_[0-9a-f]{24}$'),
    name                  text NOT NULL,
    base_url              text NOT NULL,
    email                 text NOT NULL,
    website               text,
    description           text,
    token_digest          bytea NOT NULL,
    client_auth_key_enc   bytea NOT NULL,
    delivery_concurrency  integer NOT NULL DEFAULT 1 CHECK (delivery_concurrency BETWEEN 1 AND 32),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX apps_token_digest_key ON apps (token_digest);

CREATE TABLE repositories (
    id                    text PRIMARY KEY CHECK (id ~ '^repo_[0-9a-f]{24}$'),
    url                   text NOT NULL,
    host                  text NOT NULL,
    owner                 text NOT NULL,
    name                  text NOT NULL,
    branch                text NOT NULL,
    is_private            boolean NOT NULL DEFAULT false,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    circuit_opened_at     timestamptz,
    cooldown_until        timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (url, branch)
);

CREATE TABLE watches (
    app_id           text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    repository_id    text NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending_snapshot'
                     CHECK (status IN ('pending_snapshot', 'scanning', 'synced', 'retrying', 'failed')),
    retry_count      integer NOT NULL DEFAULT 0,
    last_error       text,
    last_scanned_at  timestamptz,
    commit_sha       text,
    -- The snapshot commit at which this watch's own token was last shown to read the
    -- repository: deliveries of any other commit wait for the next sync to check again.
    verified_commit  text,
    token_enc        bytea,
    -- Bumped whenever the watch is reset, so work started before the reset cannot
    -- record deliveries against the new generation.
    generation       integer NOT NULL DEFAULT 0,
    -- When the scheduler should look at this watch again: now() for new or reset
    -- watches, last scan + RESCAN_INTERVAL_MS otherwise. The scheduler's whole
    -- query is a range scan of this index.
    next_check_at    timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, repository_id)
);
CREATE INDEX watches_repository_id_idx ON watches (repository_id);
CREATE INDEX watches_next_check_at_idx ON watches (next_check_at);

-- The repository's current snapshot: one row per repository, its files below.
CREATE TABLE snapshots (
    repository_id  text PRIMARY KEY REFERENCES repositories (id) ON DELETE CASCADE,
    commit_sha     text NOT NULL,
    file_count     integer NOT NULL DEFAULT 0,
    total_bytes    bigint NOT NULL DEFAULT 0,
    scanned_at     timestamptz NOT NULL DEFAULT now(),
    -- Work counters, for operators and for tests that prove work was not done.
    fetch_count    bigint NOT NULL DEFAULT 0,
    blobs_hashed   bigint NOT NULL DEFAULT 0
);

CREATE TABLE snapshot_files (
    repository_id  text NOT NULL REFERENCES snapshots (repository_id) ON DELETE CASCADE,
    path           text COLLATE "C" NOT NULL,
    sha            text NOT NULL,
    size           bigint NOT NULL,
    blob_id        text NOT NULL,
    is_binary      boolean NOT NULL,
    PRIMARY KEY (repository_id, path)
);
CREATE INDEX snapshot_files_blob_idx ON snapshot_files (repository_id, blob_id);

-- Files of the snapshot's commit that are never sent (symlink, submodule, too large...).
CREATE TABLE snapshot_skipped (
    repository_id  text NOT NULL REFERENCES snapshots (repository_id) ON DELETE CASCADE,
    path           text COLLATE "C" NOT NULL,
    reason         text NOT NULL,
    PRIMARY KEY (repository_id, path)
);

-- SHA-256, size and binary-ness by git blob id: a blob is read and hashed once per repository.
CREATE TABLE blob_facts (
    repository_id  text NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    blob_id        text NOT NULL,
    sha            text NOT NULL,
    size           bigint NOT NULL,
    is_binary      boolean NOT NULL,
    PRIMARY KEY (repository_id, blob_id)
);

-- What each watch's app has acknowledged: path -> sha.
CREATE TABLE delivered_files (
    app_id         text NOT NULL,
    repository_id  text NOT NULL,
    path           text COLLATE "C" NOT NULL,
    sha            text NOT NULL,
    delivered_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, repository_id, path),
    FOREIGN KEY (app_id, repository_id) REFERENCES watches (app_id, repository_id) ON DELETE CASCADE
);

-- The delivery log an app reads through GET /api/deliveries.
CREATE TABLE deliveries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id         text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    repository_id  text NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    delivery_id    uuid NOT NULL,
    event          text NOT NULL CHECK (event IN ('create', 'update', 'delete', 'sync_failed')),
    path           text COLLATE "C",
    sha            text,
    commit_sha     text,
    status         text NOT NULL CHECK (status IN ('delivered', 'failed')),
    status_code    integer,
    latency_ms     integer NOT NULL DEFAULT 0,
    attempt        integer NOT NULL DEFAULT 1,
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_app_id_idx ON deliveries (app_id, id DESC);
CREATE INDEX deliveries_app_repository_idx ON deliveries (app_id, repository_id, id DESC);
CREATE INDEX deliveries_repository_id_idx ON deliveries (repository_id);
