-- depends: 0005.watch-counters
-- The manifest (GET /api/repositories/{id}/files) tells each file's size as delivered.
-- Rows from before this migration get the snapshot's size where the app holds the
-- snapshot's version; a file delivered at an older version keeps NULL until sent again.
ALTER TABLE delivered_files ADD COLUMN size bigint;

UPDATE delivered_files d SET size = s.size
FROM snapshot_files s
WHERE s.repository_id = d.repository_id AND s.path = d.path AND s.sha = d.sha;
