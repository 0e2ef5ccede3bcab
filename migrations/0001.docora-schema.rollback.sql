DROP TABLE IF EXISTS deliveries, delivered_files, blob_facts, snapshot_skipped, snapshot_files,
    snapshots, watches, repositories, apps;
