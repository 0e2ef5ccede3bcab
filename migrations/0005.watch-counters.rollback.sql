ALTER TABLE watches DROP COLUMN IF EXISTS pending_changes, DROP COLUMN IF EXISTS files_delivered;
