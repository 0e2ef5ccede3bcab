DROP TABLE IF EXISTS delivery_totals;
DROP INDEX IF EXISTS repositories_url_match_idx;
