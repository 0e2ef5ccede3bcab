-- A repository's first snapshot is published in path-ordered parts while it is hashed, so
-- that deliveries to watches holding nothing yet start before the scan ends (issue 21).
-- Until the last part, commit_sha stays NULL (every reader sees "no snapshot yet") and
-- partial_commit / partial_through say which commit the published rows describe and up to
-- which path (inclusive, byte order) they are final.
ALTER TABLE snapshots ALTER COLUMN commit_sha DROP NOT NULL;
ALTER TABLE snapshots ADD COLUMN partial_commit text;
ALTER TABLE snapshots ADD COLUMN partial_through text COLLATE "C";
