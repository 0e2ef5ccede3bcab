-- depends: 0003.operator-console
-- Push hooks find repositories by URL and branch through an index, not a scan.
CREATE INDEX repositories_url_match_idx ON repositories (lower(url), branch);

-- docora_deliveries_total: a counter kept in Postgres so every API process reports the same
-- number, spread over 16 rows per (event, outcome) so that concurrent watches do not queue
-- on one row; the delivery log may be pruned, the totals stay.
CREATE TABLE delivery_totals (
    event    text NOT NULL,
    outcome  text NOT NULL,
    shard    smallint NOT NULL,
    n        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (event, outcome, shard)
);
INSERT INTO delivery_totals (event, outcome, shard, n)
SELECT event, status, 0, count(*) FROM deliveries GROUP BY event, status;
