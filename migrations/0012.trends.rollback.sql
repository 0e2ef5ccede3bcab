DROP TABLE IF EXISTS sync_runs;
DROP TABLE IF EXISTS check_minutes;
DROP FUNCTION IF EXISTS docora_latency_bucket(integer);
DROP TABLE IF EXISTS delivery_minutes;
