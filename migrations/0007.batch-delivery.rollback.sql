DELETE FROM deliveries WHERE event = 'batch';
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_check,
    ADD CONSTRAINT deliveries_event_check
    CHECK (event IN ('create', 'update', 'delete', 'sync_failed'));
ALTER TABLE apps DROP COLUMN IF EXISTS delivery_mode;
