-- depends: 0004.push-hooks-and-metrics
-- A watch's counts are kept with its delivered state, so that reading a watch is one row
-- read however large the repository. `files_delivered` changes in the transaction that
-- records acknowledgements; `pending_changes` is computed by the sync that hands a
-- snapshot out and by each delivery as it starts, decremented as events are acknowledged,
-- and zero once the watch is synced. NULL: no snapshot yet.
ALTER TABLE watches ADD COLUMN files_delivered integer NOT NULL DEFAULT 0,
                    ADD COLUMN pending_changes integer;

UPDATE watches w SET
    files_delivered = (SELECT count(*) FROM delivered_files d
                       WHERE d.app_id = w.app_id AND d.repository_id = w.repository_id),
    pending_changes = CASE WHEN EXISTS (SELECT 1 FROM snapshots s
                                        WHERE s.repository_id = w.repository_id) THEN
        (SELECT count(*) FROM snapshot_files f
           LEFT JOIN delivered_files d
             ON d.app_id = w.app_id AND d.repository_id = f.repository_id AND d.path = f.path
          WHERE f.repository_id = w.repository_id AND d.sha IS DISTINCT FROM f.sha)
        + (SELECT count(*) FROM delivered_files d
            WHERE d.app_id = w.app_id AND d.repository_id = w.repository_id
              AND NOT EXISTS (SELECT 1 FROM snapshot_files f
                              WHERE f.repository_id = d.repository_id AND f.path = d.path))
    END;
