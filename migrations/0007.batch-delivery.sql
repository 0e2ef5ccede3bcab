-- depends: 0006.delivered-sizes
-- Batch delivery (SPEC 11): per app, `single` (one request per event, the default) or
-- `batch` (POST {base_url}/batch with up to BATCH_MAX_EVENTS events). An acknowledged
-- batch logs one row per event under the batch's delivery id; a failed attempt logs one
-- row with event `batch`.
ALTER TABLE apps ADD COLUMN delivery_mode text NOT NULL DEFAULT 'single'
    CHECK (delivery_mode IN ('single', 'batch'));

ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_check,
    ADD CONSTRAINT deliveries_event_check
    CHECK (event IN ('create', 'update', 'delete', 'sync_failed', 'batch'));
