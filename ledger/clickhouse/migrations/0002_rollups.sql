-- Rollups: sums and quantile sketches per bucket and dimension set, recomputed from llm_calls
-- for each dirty hour (ledger/rollups.py). Every recompute writes complete rows with a higher
-- `version`, and a zero row (a tombstone) for any dimension set that no longer has calls, so
-- ReplacingMergeTree + FINAL always shows exactly what the raw table says: late data, duplicates
-- and repricing included. No mutations.
--
-- Main tiers carry the low-cardinality dimensions. Customer and user are high-cardinality: they
-- get their own day tables (customer with feature and model) instead of multiplying the main
-- ones, sorted by customer (user) before time, so one customer's history is one contiguous range.
-- There is no customer-hour tier on purpose: at realistic densities it would hold about one row
-- per call; hourly customer questions are answered from the raw table.
-- Money: Int128 pico-USD sums (the raw table's Int64 per call, with headroom).
-- Sketches: quantileTDigest states of ttft and latency, merged across buckets and dimensions.

CREATE TABLE IF NOT EXISTS rollup_minute
(
    $main_keys,
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status)
TTL bucket + INTERVAL $minute_ttl_days DAY;

CREATE TABLE IF NOT EXISTS rollup_hour
(
    $main_keys,
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status)
TTL bucket + INTERVAL $hour_ttl_days DAY;

-- Kept for good.
CREATE TABLE IF NOT EXISTS rollup_day
(
    $main_keys,
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status);

-- Narrow views merged from the wide tiers (see ledger/rollups.py): latency by model and route
-- version per hour, spend by feature/model/route version per day, and spend per customer per day.
CREATE TABLE IF NOT EXISTS rollup_route_hour
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    route_version LowCardinality(String),
    route LowCardinality(String),
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, provider, model, route_version, route)
TTL bucket + INTERVAL $hour_ttl_days DAY;

CREATE TABLE IF NOT EXISTS rollup_compact_day
(
    project_id UInt64,
    bucket DateTime('UTC'),
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    route_version LowCardinality(String),
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, bucket, feature, provider, model, route_version);

CREATE TABLE IF NOT EXISTS rollup_customer_total_day
(
    project_id UInt64,
    bucket DateTime('UTC'),
    customer_id String,
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, customer_id);

CREATE TABLE IF NOT EXISTS rollup_customer_day
(
    project_id UInt64,
    bucket DateTime('UTC'),
    customer_id String,
    feature LowCardinality(String),
    model LowCardinality(String),
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)  -- months, so "this month" reads one partition despite customer-first order
ORDER BY (project_id, customer_id, bucket, feature, model);

-- Users are the highest cardinality of all: per user and customer only, or the table would be as
-- large as the raw one.
CREATE TABLE IF NOT EXISTS rollup_user_day
(
    project_id UInt64,
    bucket DateTime('UTC'),
    user_id String,
    customer_id String,
    $measures
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, user_id, bucket, customer_id);

-- Quality signals tied to a call; the newest score per event wins.
CREATE TABLE IF NOT EXISTS feedback
(
    project_id UInt64,
    event_id String,
    score Float64,
    created_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (project_id, event_id);

-- Feedback and drill-downs find a call by event_id without knowing its day.
ALTER TABLE llm_calls ADD INDEX IF NOT EXISTS event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 4;
