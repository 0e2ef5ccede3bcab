DROP INDEX IF EXISTS docora_jobs_status_id_idx, repositories_cooldown_idx,
    deliveries_created_at_idx, apps_created_at_idx, apps_name_idx, watches_app_status_idx,
    watches_status_idx;
DROP TABLE IF EXISTS operation_items, operations, admin_sessions;
