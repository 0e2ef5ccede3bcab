-- A snapshot still being published has no commit: it is dropped, and its repository's next
-- sync scans it again from the start.
DELETE FROM snapshots WHERE commit_sha IS NULL;
ALTER TABLE snapshots DROP COLUMN IF EXISTS partial_through;
ALTER TABLE snapshots DROP COLUMN IF EXISTS partial_commit;
ALTER TABLE snapshots ALTER COLUMN commit_sha SET NOT NULL;
