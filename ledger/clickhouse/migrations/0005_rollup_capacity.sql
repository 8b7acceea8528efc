-- Capacity rollups: per UTC minute, the calls, tokens and 429s a provider counts against its
-- per-minute limits, and the latest rate limit each minute's answers reported (ledger/capacity.py).
-- Recomputed per dirty hour by the rollup machinery like every tier (ledger/rollups.py): complete
-- rows under a new version, tombstones for vanished keys, read with FINAL; exact against raw.
--
-- rollup_capacity_detail_minute keeps the dimensions /v1/capacity filters on (feature, route,
-- route_version, environment, traffic) and answers the route mix of a peak minute. At a few calls
-- per key and minute it is nearly as long as the raw table, but narrow.
-- rollup_capacity_minute is merged from it: one row per (provider, model, minute), so the
-- unfiltered question (the dashboards', the alert rule's) reads a few hundred thousand rows a
-- month instead of every call. Sorted by provider and model before time: a question is about one
-- model's (or one pool's) minutes, contiguous on disk.
--
-- Observed limits: for each of the four limits, the value on the minute's latest answer that
-- carried it (argMaxIf) and that answer's time (0 when none did), so coarser reads take the latest.
CREATE TABLE IF NOT EXISTS rollup_capacity_detail_minute
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    feature LowCardinality(String),
    route_version LowCardinality(String),
    route LowCardinality(String),
    environment LowCardinality(String),
    traffic Enum8('live' = 1, 'eval' = 2, 'shadow' = 3),
    calls UInt64,
    input_tokens UInt64,
    cache_read_tokens UInt64,
    output_tokens UInt64,
    rate_limited_calls UInt64,  -- status error, error_type rate_limit (a 429)
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
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, provider, model, feature, route_version, route, environment, traffic)
TTL bucket + INTERVAL $raw_ttl_days DAY;

CREATE TABLE IF NOT EXISTS rollup_capacity_minute
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    calls UInt64,
    input_tokens UInt64,
    cache_read_tokens UInt64,
    output_tokens UInt64,
    rate_limited_calls UInt64,  -- status error, error_type rate_limit (a 429)
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
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL $raw_ttl_days DAY;
