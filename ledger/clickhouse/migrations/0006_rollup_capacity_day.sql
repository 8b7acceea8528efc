-- rollup_capacity_day: one row per (project, provider, model, UTC day) holding that day's minutes as
-- one array of (minute of the day, calls, input tokens, cache reads, output tokens, 429s), merged
-- from rollup_capacity_minute (ledger/rollups.py; recomputed per dirty day, tombstones, FINAL).
-- /v1/capacity unfolds it with ARRAY JOIN: a month is a few hundred short rows to merge instead of
-- hundreds of thousands of minute rows, and the per-minute sums stay exact (the same integers), so
-- peaks, p99 and pools (summed minute by minute across their models) are computed as before.
CREATE TABLE IF NOT EXISTS rollup_capacity_day
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    calls UInt64,
    minutes Array(Tuple(UInt16, UInt64, UInt64, UInt64, UInt64, UInt64)),
    limit_tokens Nullable(UInt64),
    limit_tokens_at DateTime64(3, 'UTC'),
    limit_requests Nullable(UInt64),
    limit_requests_at DateTime64(3, 'UTC'),
    limit_input_tokens Nullable(UInt64),
    limit_input_tokens_at DateTime64(3, 'UTC'),
    limit_output_tokens Nullable(UInt64),
    limit_output_tokens_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL $raw_ttl_days DAY;
