ALTER TABLE snapshots DROP COLUMN IF EXISTS lfs_bytes;
ALTER TABLE snapshots DROP COLUMN IF EXISTS lfs_objects;
ALTER TABLE snapshots DROP COLUMN IF EXISTS lfs_resolved;
ALTER TABLE snapshot_files DROP COLUMN IF EXISTS lfs;
