DROP FUNCTION IF EXISTS docora_next_check(text, bigint);
DROP TABLE IF EXISTS rescan_totals;
