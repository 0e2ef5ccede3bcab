-- depends: 0010.defer-once
-- Git LFS (SPEC 13). A file whose content came from LFS: `sha` and `size` are the
-- object's (sha = its oid) while `blob_id` stays the pointer's blob, which is what
-- changes in git when the object does.
ALTER TABLE snapshot_files ADD COLUMN lfs boolean NOT NULL DEFAULT false;
-- Whether the scan resolved LFS pointers (LFS=on); a snapshot made the other way is
-- scanned again in full when the setting changes. NULL: made before LFS existed (off).
ALTER TABLE snapshots ADD COLUMN lfs_resolved boolean;
ALTER TABLE snapshots ADD COLUMN lfs_objects integer NOT NULL DEFAULT 0;
ALTER TABLE snapshots ADD COLUMN lfs_bytes bigint NOT NULL DEFAULT 0;
