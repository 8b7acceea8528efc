-- rollup_capacity_day: one row per (project, provider, model, UTC day) holding that day's minutes as
-- one array of (minute of the day, calls, input tokens, cache reads, output tokens, 429s), merged
-- from rollup_capacity_minute (ledger/rollups.py; recomputed per dirty day, tombstones, FINAL).
-- Beside the minutes, the day's figures per measure (tpm, itpm, uncached itpm, otpm, rpm): its peak
-- minute, all its minutes sorted largest first (negated, ascending) for the p99 of a range, the
-- peak's key (tpm · 2048 + 1439 − the minute of the day: the earliest minute of the largest tpm),
-- the minutes with traffic and the 429s. /v1/capacity reads these for the whole days of its range
-- (a month is 30 short rows a model instead of 43,200 minute rows) and unfolds the minutes with
-- ARRAY JOIN only for the range's partial edge days and for pools (summed minute by minute across
-- their models). Every figure is an exact integer, equal to the raw table's.
CREATE TABLE IF NOT EXISTS rollup_capacity_day
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    calls UInt64,
    minutes Array(Tuple(UInt16, UInt64, UInt64, UInt64, UInt64, UInt64)),
    active_minutes UInt32,
    rate_limited_calls UInt64,
    peak_tpm UInt64,
    peak_itpm UInt64,
    peak_uncached_itpm UInt64,
    peak_otpm UInt64,
    peak_rpm UInt64,
    peak_key UInt64,
    top_tpm Array(Int64),
    top_itpm Array(Int64),
    top_uncached_itpm Array(Int64),
    top_otpm Array(Int64),
    top_rpm Array(Int64),
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
