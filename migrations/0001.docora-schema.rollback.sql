DROP TABLE IF EXISTS deliveries, delivered_files, snapshot_files, snapshots, watches, repositories, apps;
