-- bootstrap
CREATE DATABASE IF NOT EXISTS `meterline` ON CLUSTER meterline;

CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER meterline (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/cluster_wide/{database}/{table}', '{shard}-{replica}') ORDER BY version;

-- 0001_llm_calls
CREATE TABLE IF NOT EXISTS llm_calls_local ON CLUSTER meterline
(
    project_id          UInt64,
    event_id            String,
    timestamp           DateTime64(3, 'UTC'),
    received_at         DateTime64(3, 'UTC'),
    batch_id            UUID,

    provider            LowCardinality(String),
    model               LowCardinality(String),
    response_model      LowCardinality(String),
    feature             LowCardinality(String),
    customer_id         String,
    user_id             String,
    route_version       LowCardinality(String),
    route               LowCardinality(String),
    environment         LowCardinality(String),

    input_tokens        UInt64,
    cache_read_tokens   UInt64,
    cache_write_tokens  UInt64,
    output_tokens       UInt64,
    reasoning_tokens    UInt64,

    ttft_ms             Nullable(Float64),
    latency_ms          Nullable(Float64),
    status              Enum8('ok' = 1, 'error' = 2, 'timeout' = 3, 'cancelled' = 4),
    error_type          LowCardinality(String),
    attempt             UInt16,
    traffic             Enum8('live' = 1, 'eval' = 2, 'shadow' = 3),
    cache_hit           Bool,
    service_tier        Enum8('default' = 1, 'batch' = 2, 'flex' = 3, 'priority' = 4),
    streamed            Bool,
    tool_calls          UInt32,
    max_tokens          Nullable(UInt32),
    trace_id            String,
    session_id          String,
    request_id          String,
    tags                Map(LowCardinality(String), String),

    cost_input_pusd         Int64,
    cost_cache_read_pusd    Int64,
    cost_cache_write_pusd   Int64,
    cost_output_pusd        Int64,
    cost_reasoning_pusd     Int64,
    cost_pusd               Int64,
    cache_saving_pusd       Int64,
    cost_source             Enum8('catalogue' = 1, 'override' = 2, 'reported' = 3, 'unpriced' = 4),
    price_ref               LowCardinality(String),
    version                 UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toStartOfHour(timestamp), event_id)
TTL toDateTime(timestamp) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS llm_calls ON CLUSTER meterline
AS llm_calls_local
ENGINE = Distributed('meterline', 'meterline', 'llm_calls_local', cityHash64(project_id));

-- 0002_rollups
CREATE TABLE IF NOT EXISTS rollup_minute_local ON CLUSTER meterline
(
        project_id UInt64,
    bucket DateTime('UTC'),
    feature LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    route_version LowCardinality(String),
    route LowCardinality(String),
    environment LowCardinality(String),
    traffic Enum8('live' = 1, 'eval' = 2, 'shadow' = 3),
    status Enum8('ok' = 1, 'error' = 2, 'timeout' = 3, 'cancelled' = 4),
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMMDD(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status)
TTL bucket + INTERVAL 14 DAY;

CREATE TABLE IF NOT EXISTS rollup_minute ON CLUSTER meterline
AS rollup_minute_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_minute_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_hour_local ON CLUSTER meterline
(
        project_id UInt64,
    bucket DateTime('UTC'),
    feature LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    route_version LowCardinality(String),
    route LowCardinality(String),
    environment LowCardinality(String),
    traffic Enum8('live' = 1, 'eval' = 2, 'shadow' = 3),
    status Enum8('ok' = 1, 'error' = 2, 'timeout' = 3, 'cancelled' = 4),
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status)
TTL bucket + INTERVAL 730 DAY;

CREATE TABLE IF NOT EXISTS rollup_hour ON CLUSTER meterline
AS rollup_hour_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_hour_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_day_local ON CLUSTER meterline
(
        project_id UInt64,
    bucket DateTime('UTC'),
    feature LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    route_version LowCardinality(String),
    route LowCardinality(String),
    environment LowCardinality(String),
    traffic Enum8('live' = 1, 'eval' = 2, 'shadow' = 3),
    status Enum8('ok' = 1, 'error' = 2, 'timeout' = 3, 'cancelled' = 4),
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status);

CREATE TABLE IF NOT EXISTS rollup_day ON CLUSTER meterline
AS rollup_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_day_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_route_hour_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    route_version LowCardinality(String),
    route LowCardinality(String),
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, provider, model, route_version, route)
TTL bucket + INTERVAL 730 DAY;

CREATE TABLE IF NOT EXISTS rollup_route_hour ON CLUSTER meterline
AS rollup_route_hour_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_route_hour_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_compact_day_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    route_version LowCardinality(String),
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, bucket, feature, provider, model, route_version);

CREATE TABLE IF NOT EXISTS rollup_compact_day ON CLUSTER meterline
AS rollup_compact_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_compact_day_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_customer_total_day_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    customer_id String,
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, customer_id);

CREATE TABLE IF NOT EXISTS rollup_customer_total_day ON CLUSTER meterline
AS rollup_customer_total_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_customer_total_day_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_customer_day_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    customer_id String,
    feature LowCardinality(String),
    model LowCardinality(String),
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, customer_id, bucket, feature, model);

CREATE TABLE IF NOT EXISTS rollup_customer_day ON CLUSTER meterline
AS rollup_customer_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_customer_day_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_user_day_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    user_id String,
    customer_id String,
        calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    ttft_digest AggregateFunction(quantileTDigest, Float64),
    latency_digest AggregateFunction(quantileTDigest, Float64),
    feedback_count UInt64,
    feedback_score_sum Float64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, user_id, bucket, customer_id);

CREATE TABLE IF NOT EXISTS rollup_user_day ON CLUSTER meterline
AS rollup_user_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_user_day_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS feedback_local ON CLUSTER meterline
(
    project_id UInt64,
    event_id String,
    score Float64,
    created_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', created_at)
ORDER BY (project_id, event_id);

CREATE TABLE IF NOT EXISTS feedback ON CLUSTER meterline
AS feedback_local
ENGINE = Distributed('meterline', 'meterline', 'feedback_local', cityHash64(project_id));

ALTER TABLE llm_calls_local ON CLUSTER meterline ADD INDEX IF NOT EXISTS event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 4;

-- 0003_call_finish_and_prefix
ALTER TABLE llm_calls_local ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS finish_reason LowCardinality(String) DEFAULT '' AFTER max_tokens,
    ADD COLUMN IF NOT EXISTS prompt_prefix_hash String DEFAULT '' AFTER finish_reason,
    ADD COLUMN IF NOT EXISTS prompt_prefix_tokens UInt32 DEFAULT 0 AFTER prompt_prefix_hash,
    ADD COLUMN IF NOT EXISTS prompt_prefix_tokens_estimated Bool DEFAULT false AFTER prompt_prefix_tokens;

ALTER TABLE llm_calls ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS finish_reason LowCardinality(String) DEFAULT '' AFTER max_tokens,
    ADD COLUMN IF NOT EXISTS prompt_prefix_hash String DEFAULT '' AFTER finish_reason,
    ADD COLUMN IF NOT EXISTS prompt_prefix_tokens UInt32 DEFAULT 0 AFTER prompt_prefix_hash,
    ADD COLUMN IF NOT EXISTS prompt_prefix_tokens_estimated Bool DEFAULT false AFTER prompt_prefix_tokens;

-- 0004_call_ratelimits
ALTER TABLE llm_calls_local ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS ratelimit_limit_tokens Nullable(UInt64) AFTER prompt_prefix_tokens_estimated,
    ADD COLUMN IF NOT EXISTS ratelimit_remaining_tokens Nullable(UInt64) AFTER ratelimit_limit_tokens,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_requests Nullable(UInt64) AFTER ratelimit_remaining_tokens,
    ADD COLUMN IF NOT EXISTS ratelimit_remaining_requests Nullable(UInt64) AFTER ratelimit_limit_requests,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_input_tokens Nullable(UInt64) AFTER ratelimit_remaining_requests,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_output_tokens Nullable(UInt64) AFTER ratelimit_limit_input_tokens;

ALTER TABLE llm_calls ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS ratelimit_limit_tokens Nullable(UInt64) AFTER prompt_prefix_tokens_estimated,
    ADD COLUMN IF NOT EXISTS ratelimit_remaining_tokens Nullable(UInt64) AFTER ratelimit_limit_tokens,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_requests Nullable(UInt64) AFTER ratelimit_remaining_tokens,
    ADD COLUMN IF NOT EXISTS ratelimit_remaining_requests Nullable(UInt64) AFTER ratelimit_limit_requests,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_input_tokens Nullable(UInt64) AFTER ratelimit_remaining_requests,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_output_tokens Nullable(UInt64) AFTER ratelimit_limit_input_tokens;

-- 0005_rollup_capacity
CREATE TABLE IF NOT EXISTS rollup_capacity_detail_minute_local ON CLUSTER meterline
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
    rate_limited_calls UInt64,
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, provider, model, feature, route_version, route, environment, traffic)
TTL bucket + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS rollup_capacity_detail_minute ON CLUSTER meterline
AS rollup_capacity_detail_minute_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_capacity_detail_minute_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_capacity_minute_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    calls UInt64,
    input_tokens UInt64,
    cache_read_tokens UInt64,
    output_tokens UInt64,
    rate_limited_calls UInt64,
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS rollup_capacity_minute ON CLUSTER meterline
AS rollup_capacity_minute_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_capacity_minute_local', cityHash64(project_id));

-- 0006_rollup_capacity_day
CREATE TABLE IF NOT EXISTS rollup_capacity_day_local ON CLUSTER meterline
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS rollup_capacity_day ON CLUSTER meterline
AS rollup_capacity_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_capacity_day_local', cityHash64(project_id));

-- 0007_rollup_price_hour
CREATE TABLE IF NOT EXISTS rollup_price_hour_local ON CLUSTER meterline
(
        project_id UInt64,
    bucket DateTime('UTC'),
    feature LowCardinality(String),
    model LowCardinality(String),
    provider LowCardinality(String),
    route_version LowCardinality(String),
    route LowCardinality(String),
    environment LowCardinality(String),
    traffic Enum8('live' = 1, 'eval' = 2, 'shadow' = 3),
    status Enum8('ok' = 1, 'error' = 2, 'timeout' = 3, 'cancelled' = 4),
    service_tier Enum8('default' = 1, 'batch' = 2, 'flex' = 3, 'priority' = 4),
    streamed Bool,
    finish_reason LowCardinality(String),
    error_type LowCardinality(String),
    price_band UInt8,
    calls UInt64,
    cache_hits UInt64,
    cost_pusd Int128,
    priced_uncached_input_tokens UInt64,
    priced_cache_read_tokens UInt64,
    priced_cache_write_tokens UInt64,
    priced_output_tokens UInt64,
    priced_reasoning_tokens UInt64,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status,
          service_tier, streamed, finish_reason, error_type, price_band)
TTL bucket + INTERVAL 730 DAY;

CREATE TABLE IF NOT EXISTS rollup_price_hour ON CLUSTER meterline
AS rollup_price_hour_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_price_hour_local', cityHash64(project_id));

INSERT INTO rollup_price_hour
SELECT project_id, toStartOfHour(timestamp) AS bucket, feature, model, provider, route_version, route, environment,
       traffic, status, service_tier, streamed, finish_reason, error_type,
       arrayCount(x -> input_tokens > x, [32000, 100000, 128000, 199999, 200000, 256000, 272000, 512000, 524288]) AS band,
       count(), countIf(cache_hit), sum(toInt128(cost_pusd)),
       sumIf(input_tokens - cache_read_tokens - cache_write_tokens, NOT cache_hit),
       sumIf(cache_read_tokens, NOT cache_hit), sumIf(cache_write_tokens, NOT cache_hit),
       sumIf(output_tokens - reasoning_tokens, NOT cache_hit), sumIf(reasoning_tokens, NOT cache_hit),
       toUInt64(1)
FROM llm_calls FINAL
GROUP BY project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status,
         service_tier, streamed, finish_reason, error_type, band;

-- 0008_rollup_capacity_day_figures
CREATE TABLE IF NOT EXISTS rollup_capacity_day_figures_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    calls UInt64,
    active_minutes UInt32,
    rate_limited_calls UInt64,
    peak_tpm UInt64,
    peak_itpm UInt64,
    peak_uncached_itpm UInt64,
    peak_otpm UInt64,
    peak_rpm UInt64,
    peak_key UInt64,
    top_tpm Array(UInt64),
    top_itpm Array(UInt64),
    top_uncached_itpm Array(UInt64),
    top_otpm Array(UInt64),
    top_rpm Array(UInt64),
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS rollup_capacity_day_figures ON CLUSTER meterline
AS rollup_capacity_day_figures_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_capacity_day_figures_local', cityHash64(project_id));

INSERT INTO rollup_capacity_day_figures
SELECT m.project_id, toStartOfDay(m.bucket) AS day, m.provider, m.model,
       sum(m.calls), toUInt32(countIf(m.calls > 0)), sum(m.rate_limited_calls),
       max(m.input_tokens + m.output_tokens), max(m.input_tokens), max(m.input_tokens - m.cache_read_tokens),
       max(m.output_tokens), max(m.calls),
       maxIf((m.input_tokens + m.output_tokens) * 2048 + (1439 - toRelativeMinuteNum(m.bucket) % 1440), m.calls > 0),
       arraySlice(arrayReverseSort(groupArrayIf(m.input_tokens + m.output_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.input_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.input_tokens - m.cache_read_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.output_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.calls, m.calls > 0)), 1, 100),
       argMaxIf(m.limit_tokens, (m.limit_tokens_at, assumeNotNull(m.limit_tokens)), isNotNull(m.limit_tokens)), max(m.limit_tokens_at),
       argMaxIf(m.limit_requests, (m.limit_requests_at, assumeNotNull(m.limit_requests)), isNotNull(m.limit_requests)), max(m.limit_requests_at),
       argMaxIf(m.limit_input_tokens, (m.limit_input_tokens_at, assumeNotNull(m.limit_input_tokens)), isNotNull(m.limit_input_tokens)),
       max(m.limit_input_tokens_at),
       argMaxIf(m.limit_output_tokens, (m.limit_output_tokens_at, assumeNotNull(m.limit_output_tokens)), isNotNull(m.limit_output_tokens)),
       max(m.limit_output_tokens_at),
       toUInt64(1)
FROM rollup_capacity_minute AS m FINAL
GROUP BY m.project_id, day, m.provider, m.model
HAVING sum(m.calls) > 0;

CREATE TABLE IF NOT EXISTS rollup_capacity_pool_day_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    members Array(String),
    calls UInt64,
    active_minutes UInt32,
    rate_limited_calls UInt64,
    peak_tpm UInt64,
    peak_itpm UInt64,
    peak_uncached_itpm UInt64,
    peak_otpm UInt64,
    peak_rpm UInt64,
    peak_key UInt64,
    top_tpm Array(UInt64),
    top_itpm Array(UInt64),
    top_uncached_itpm Array(UInt64),
    top_otpm Array(UInt64),
    top_rpm Array(UInt64),
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS rollup_capacity_pool_day ON CLUSTER meterline
AS rollup_capacity_pool_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_capacity_pool_day_local', cityHash64(project_id));

DROP TABLE IF EXISTS rollup_capacity_day ON CLUSTER meterline;

DROP TABLE IF EXISTS rollup_capacity_day_local ON CLUSTER meterline;

-- 0010_calls_log_indexes
ALTER TABLE llm_calls_local ON CLUSTER meterline
    ADD INDEX IF NOT EXISTS call_ids [event_id, trace_id, request_id, session_id, customer_id] TYPE bloom_filter(0.01) GRANULARITY 1,
    ADD INDEX IF NOT EXISTS cost_top cost_pusd TYPE minmax GRANULARITY 1,
    ADD INDEX IF NOT EXISTS latency_top latency_ms TYPE minmax GRANULARITY 1;

ALTER TABLE llm_calls_local ON CLUSTER meterline MATERIALIZE INDEX call_ids;

ALTER TABLE llm_calls_local ON CLUSTER meterline MATERIALIZE INDEX cost_top;

ALTER TABLE llm_calls_local ON CLUSTER meterline MATERIALIZE INDEX latency_top;

-- 0011_rollup_price_hour_extremes
ALTER TABLE rollup_price_hour_local ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS max_cost_pusd Int64 AFTER priced_reasoning_tokens,
    ADD COLUMN IF NOT EXISTS max_latency_ms Nullable(Float64) AFTER max_cost_pusd,
    ADD COLUMN IF NOT EXISTS max_ttft_ms Nullable(Float64) AFTER max_latency_ms,
    ADD COLUMN IF NOT EXISTS max_tokens UInt64 AFTER max_ttft_ms;

ALTER TABLE rollup_price_hour ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS max_cost_pusd Int64 AFTER priced_reasoning_tokens,
    ADD COLUMN IF NOT EXISTS max_latency_ms Nullable(Float64) AFTER max_cost_pusd,
    ADD COLUMN IF NOT EXISTS max_ttft_ms Nullable(Float64) AFTER max_latency_ms,
    ADD COLUMN IF NOT EXISTS max_tokens UInt64 AFTER max_ttft_ms;

INSERT INTO rollup_price_hour
    (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status,
     service_tier, streamed, finish_reason, error_type, price_band, calls, cache_hits, cost_pusd,
     priced_uncached_input_tokens, priced_cache_read_tokens, priced_cache_write_tokens, priced_output_tokens,
     priced_reasoning_tokens, max_cost_pusd, max_latency_ms, max_ttft_ms, max_tokens, version)
SELECT project_id, toStartOfHour(timestamp) AS bucket, feature, model, provider, route_version, route, environment,
       traffic, status, service_tier, streamed, finish_reason, error_type,
       arrayCount(x -> input_tokens > x, [32000, 100000, 128000, 199999, 200000, 256000, 272000, 512000, 524288]) AS band,
       count(), countIf(cache_hit), sum(toInt128(cost_pusd)),
       sumIf(input_tokens - cache_read_tokens - cache_write_tokens, NOT cache_hit),
       sumIf(cache_read_tokens, NOT cache_hit), sumIf(cache_write_tokens, NOT cache_hit),
       sumIf(output_tokens - reasoning_tokens, NOT cache_hit), sumIf(reasoning_tokens, NOT cache_hit),
       max(cost_pusd), max(latency_ms), max(ttft_ms), max(input_tokens + output_tokens),
       toUInt64(toUnixTimestamp64Micro(now64(6)))
FROM llm_calls FINAL
GROUP BY project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status,
         service_tier, streamed, finish_reason, error_type, band;

-- 0012_rollup_capacity_figures
CREATE TABLE IF NOT EXISTS rollup_capacity_figures_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    provider LowCardinality(String),
    model LowCardinality(String),
    pooled UInt8,
    grain Enum8('day' = 1, 'hour' = 2),
    members Array(String),
    calls UInt64,
    active_minutes UInt32,
    rate_limited_calls UInt64,
    peak_tpm UInt64,
    peak_itpm UInt64,
    peak_uncached_itpm UInt64,
    peak_otpm UInt64,
    peak_rpm UInt64,
    peak_key UInt64,
    top_tpm Array(UInt64),
    top_itpm Array(UInt64),
    top_uncached_itpm Array(UInt64),
    top_otpm Array(UInt64),
    top_rpm Array(UInt64),
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, provider, model, pooled, grain, bucket)
TTL bucket + INTERVAL 400 DAY
SETTINGS index_granularity = 128;

CREATE TABLE IF NOT EXISTS rollup_capacity_figures ON CLUSTER meterline
AS rollup_capacity_figures_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_capacity_figures_local', cityHash64(project_id));

INSERT INTO rollup_capacity_figures (project_id, bucket, provider, model, pooled, grain, members, calls, active_minutes, rate_limited_calls, peak_tpm, peak_itpm, peak_uncached_itpm, peak_otpm, peak_rpm, peak_key, top_tpm, top_itpm, top_uncached_itpm, top_otpm, top_rpm, limit_tokens, limit_tokens_at, limit_requests, limit_requests_at, limit_input_tokens, limit_input_tokens_at, limit_output_tokens, limit_output_tokens_at, version)
SELECT project_id, bucket, provider, model, 0, 'day', [], calls, active_minutes, rate_limited_calls, peak_tpm, peak_itpm, peak_uncached_itpm, peak_otpm, peak_rpm, peak_key, top_tpm, top_itpm, top_uncached_itpm, top_otpm, top_rpm, limit_tokens, limit_tokens_at, limit_requests, limit_requests_at, limit_input_tokens, limit_input_tokens_at, limit_output_tokens, limit_output_tokens_at, version
FROM rollup_capacity_day_figures FINAL WHERE calls > 0;

INSERT INTO rollup_capacity_figures (project_id, bucket, provider, model, pooled, grain, members, calls, active_minutes, rate_limited_calls, peak_tpm, peak_itpm, peak_uncached_itpm, peak_otpm, peak_rpm, peak_key, top_tpm, top_itpm, top_uncached_itpm, top_otpm, top_rpm, limit_tokens, limit_tokens_at, limit_requests, limit_requests_at, limit_input_tokens, limit_input_tokens_at, limit_output_tokens, limit_output_tokens_at, version)
SELECT project_id, bucket, provider, model, 1, 'day', members, calls, active_minutes, rate_limited_calls, peak_tpm, peak_itpm, peak_uncached_itpm, peak_otpm, peak_rpm, peak_key, top_tpm, top_itpm, top_uncached_itpm, top_otpm, top_rpm, limit_tokens, limit_tokens_at, limit_requests, limit_requests_at, limit_input_tokens, limit_input_tokens_at, limit_output_tokens, limit_output_tokens_at, version
FROM rollup_capacity_pool_day FINAL WHERE calls > 0;

INSERT INTO rollup_capacity_figures (project_id, bucket, provider, model, pooled, grain, members, calls, active_minutes, rate_limited_calls, peak_tpm, peak_itpm, peak_uncached_itpm, peak_otpm, peak_rpm, peak_key, top_tpm, top_itpm, top_uncached_itpm, top_otpm, top_rpm, limit_tokens, limit_tokens_at, limit_requests, limit_requests_at, limit_input_tokens, limit_input_tokens_at, limit_output_tokens, limit_output_tokens_at, version)
SELECT m.project_id, toStartOfHour(m.bucket) AS hour, m.provider, m.model, 0, 'hour', [],
       sum(m.calls), toUInt32(countIf(m.calls > 0)), sum(m.rate_limited_calls),
       max(m.input_tokens + m.output_tokens), max(m.input_tokens), max(m.input_tokens - m.cache_read_tokens),
       max(m.output_tokens), max(m.calls),
       maxIf((m.input_tokens + m.output_tokens) * 2048 + (1439 - toRelativeMinuteNum(m.bucket) % 1440), m.calls > 0),
       arraySlice(arrayReverseSort(groupArrayIf(m.input_tokens + m.output_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.input_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.input_tokens - m.cache_read_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.output_tokens, m.calls > 0)), 1, 100),
       arraySlice(arrayReverseSort(groupArrayIf(m.calls, m.calls > 0)), 1, 100),
       argMaxIf(m.limit_tokens, (m.limit_tokens_at, assumeNotNull(m.limit_tokens)), isNotNull(m.limit_tokens)), max(m.limit_tokens_at),
       argMaxIf(m.limit_requests, (m.limit_requests_at, assumeNotNull(m.limit_requests)), isNotNull(m.limit_requests)), max(m.limit_requests_at),
       argMaxIf(m.limit_input_tokens, (m.limit_input_tokens_at, assumeNotNull(m.limit_input_tokens)), isNotNull(m.limit_input_tokens)),
       max(m.limit_input_tokens_at),
       argMaxIf(m.limit_output_tokens, (m.limit_output_tokens_at, assumeNotNull(m.limit_output_tokens)), isNotNull(m.limit_output_tokens)),
       max(m.limit_output_tokens_at),
       toUInt64(1)
FROM rollup_capacity_minute AS m FINAL
GROUP BY m.project_id, hour, m.provider, m.model
HAVING sum(m.calls) > 0;

DROP TABLE IF EXISTS rollup_capacity_day_figures ON CLUSTER meterline;

DROP TABLE IF EXISTS rollup_capacity_day_figures_local ON CLUSTER meterline;

DROP TABLE IF EXISTS rollup_capacity_pool_day ON CLUSTER meterline;

DROP TABLE IF EXISTS rollup_capacity_pool_day_local ON CLUSTER meterline;

-- 0013_rollup_quantiles
CREATE TABLE IF NOT EXISTS rollup_quantile_hour_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    grouped_by LowCardinality(String),
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    route_version LowCardinality(String),
    calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    feedback_count UInt64,
    feedback_score_sum Float64,
    ttft_p50 Float64 DEFAULT nan,
    ttft_p95 Float64 DEFAULT nan,
    ttft_p99 Float64 DEFAULT nan,
    latency_p50 Float64 DEFAULT nan,
    latency_p95 Float64 DEFAULT nan,
    latency_p99 Float64 DEFAULT nan,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, grouped_by, bucket, feature, provider, model, route_version)
TTL bucket + INTERVAL 730 DAY;

CREATE TABLE IF NOT EXISTS rollup_quantile_hour ON CLUSTER meterline
AS rollup_quantile_hour_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_quantile_hour_local', cityHash64(project_id));

CREATE TABLE IF NOT EXISTS rollup_quantile_day_local ON CLUSTER meterline
(
    project_id UInt64,
    bucket DateTime('UTC'),
    grouped_by LowCardinality(String),
    feature LowCardinality(String),
    provider LowCardinality(String),
    model LowCardinality(String),
    route_version LowCardinality(String),
    calls UInt64,
    error_calls UInt64,
    retry_calls UInt64,
    retry_tokens UInt64,
    retry_cost_pusd Int128,
    cache_hits UInt64,
    cache_saving_pusd Int128,
    input_tokens UInt64,
    uncached_input_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    output_tokens UInt64,
    reasoning_tokens UInt64,
    cost_input_pusd Int128,
    cost_cache_read_pusd Int128,
    cost_cache_write_pusd Int128,
    cost_output_pusd Int128,
    cost_reasoning_pusd Int128,
    cost_pusd Int128,
    unpriced_calls UInt64,
    streamed_calls UInt64,
    tool_calls UInt64,
    latency_calls UInt64,
    latency_sum_ms Float64,
    feedback_count UInt64,
    feedback_score_sum Float64,
    ttft_p50 Float64 DEFAULT nan,
    ttft_p95 Float64 DEFAULT nan,
    ttft_p99 Float64 DEFAULT nan,
    latency_p50 Float64 DEFAULT nan,
    latency_p95 Float64 DEFAULT nan,
    latency_p99 Float64 DEFAULT nan,
    version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, grouped_by, bucket, feature, provider, model, route_version);

CREATE TABLE IF NOT EXISTS rollup_quantile_day ON CLUSTER meterline
AS rollup_quantile_day_local
ENGINE = Distributed('meterline', 'meterline', 'rollup_quantile_day_local', cityHash64(project_id));

INSERT INTO rollup_quantile_hour
    (project_id, bucket, grouped_by, feature, provider, model, route_version, calls, error_calls, retry_calls, retry_tokens, retry_cost_pusd, cache_hits, cache_saving_pusd, input_tokens, uncached_input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_input_pusd, cost_cache_read_pusd, cost_cache_write_pusd, cost_output_pusd, cost_reasoning_pusd, cost_pusd, unpriced_calls, streamed_calls, tool_calls, latency_calls, latency_sum_ms, feedback_count, feedback_score_sum, ttft_p50, ttft_p95, ttft_p99, latency_p50, latency_p95, latency_p99, version) SELECT project_id, bucket, '', '', '', '', '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_route_hour FINAL GROUP BY project_id, bucket HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'feature', toString(feature), '', '', '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_hour FINAL GROUP BY project_id, bucket, feature HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'provider', '', toString(provider), '', '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_route_hour FINAL GROUP BY project_id, bucket, provider HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model', '', '', toString(model), '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_route_hour FINAL GROUP BY project_id, bucket, model HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'route_version', '', '', '', toString(route_version),
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_route_hour FINAL GROUP BY project_id, bucket, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,provider', '', toString(provider), toString(model), '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_route_hour FINAL GROUP BY project_id, bucket, provider, model HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,route_version', '', '', toString(model), toString(route_version),
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_route_hour FINAL GROUP BY project_id, bucket, model, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,provider,route_version', '', toString(provider), toString(model), toString(route_version),
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_route_hour FINAL GROUP BY project_id, bucket, provider, model, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'feature,model', toString(feature), '', toString(model), '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_hour FINAL GROUP BY project_id, bucket, feature, model HAVING calls > 0;

INSERT INTO rollup_quantile_day
    (project_id, bucket, grouped_by, feature, provider, model, route_version, calls, error_calls, retry_calls, retry_tokens, retry_cost_pusd, cache_hits, cache_saving_pusd, input_tokens, uncached_input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_input_pusd, cost_cache_read_pusd, cost_cache_write_pusd, cost_output_pusd, cost_reasoning_pusd, cost_pusd, unpriced_calls, streamed_calls, tool_calls, latency_calls, latency_sum_ms, feedback_count, feedback_score_sum, ttft_p50, ttft_p95, ttft_p99, latency_p50, latency_p95, latency_p99, version) SELECT project_id, bucket, '', '', '', '', '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'feature', toString(feature), '', '', '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, feature HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'provider', '', toString(provider), '', '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, provider HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model', '', '', toString(model), '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, model HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'route_version', '', '', '', toString(route_version),
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,provider', '', toString(provider), toString(model), '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, provider, model HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,route_version', '', '', toString(model), toString(route_version),
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, model, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,provider,route_version', '', toString(provider), toString(model), toString(route_version),
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, provider, model, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'feature,model', toString(feature), '', toString(model), '',
    sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, toUInt64(toUnixTimestamp64Micro(now64(6)))
    FROM rollup_compact_day FINAL GROUP BY project_id, bucket, feature, model HAVING calls > 0;

-- 0014_rollup_quantile_day_digests
ALTER TABLE rollup_quantile_day_local ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS ttft_digest AggregateFunction(quantileTDigest, Float64) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_digest AggregateFunction(quantileTDigest, Float64) AFTER ttft_digest;

ALTER TABLE rollup_quantile_day ON CLUSTER meterline
    ADD COLUMN IF NOT EXISTS ttft_digest AggregateFunction(quantileTDigest, Float64) AFTER latency_p99,
    ADD COLUMN IF NOT EXISTS latency_digest AggregateFunction(quantileTDigest, Float64) AFTER ttft_digest;

INSERT INTO rollup_quantile_day (project_id, bucket, grouped_by, feature, provider, model, route_version, calls, error_calls, retry_calls, retry_tokens, retry_cost_pusd, cache_hits, cache_saving_pusd, input_tokens, uncached_input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_input_pusd, cost_cache_read_pusd, cost_cache_write_pusd, cost_output_pusd, cost_reasoning_pusd, cost_pusd, unpriced_calls, streamed_calls, tool_calls, latency_calls, latency_sum_ms, feedback_count, feedback_score_sum, ttft_p50, ttft_p95, ttft_p99, latency_p50, latency_p95, latency_p99, ttft_digest, latency_digest, version) SELECT project_id, bucket, '', '', '', '', '', sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'feature', toString(feature), '', '', '', sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, feature HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'provider', '', toString(provider), '', '', sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, provider HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model', '', '', toString(model), '', sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, model HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'route_version', '', '', '', toString(route_version), sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,provider', '', toString(provider), toString(model), '', sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, provider, model HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,route_version', '', '', toString(model), toString(route_version), sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, model, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'model,provider,route_version', '', toString(provider), toString(model), toString(route_version), sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, provider, model, route_version HAVING calls > 0
UNION ALL
SELECT project_id, bucket, 'feature,model', toString(feature), '', toString(model), '', sum(calls) AS calls, sum(error_calls) AS error_calls, sum(retry_calls) AS retry_calls, sum(retry_tokens) AS retry_tokens, sum(retry_cost_pusd) AS retry_cost_pusd, sum(cache_hits) AS cache_hits, sum(cache_saving_pusd) AS cache_saving_pusd, sum(input_tokens) AS input_tokens, sum(uncached_input_tokens) AS uncached_input_tokens, sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens, sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, sum(cost_input_pusd) AS cost_input_pusd, sum(cost_cache_read_pusd) AS cost_cache_read_pusd, sum(cost_cache_write_pusd) AS cost_cache_write_pusd, sum(cost_output_pusd) AS cost_output_pusd, sum(cost_reasoning_pusd) AS cost_reasoning_pusd, sum(cost_pusd) AS cost_pusd, sum(unpriced_calls) AS unpriced_calls, sum(streamed_calls) AS streamed_calls, sum(tool_calls) AS tool_calls, sum(latency_calls) AS latency_calls, sum(latency_sum_ms) AS latency_sum_ms, sum(feedback_count) AS feedback_count, sum(feedback_score_sum) AS feedback_score_sum, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[1] AS ttft_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[2] AS ttft_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest)[3] AS ttft_p99, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[1] AS latency_p50, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[2] AS latency_p95, quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest)[3] AS latency_p99, quantileTDigestMergeState(ttft_digest) AS ttft_state, quantileTDigestMergeState(latency_digest) AS latency_state, toUInt64(toUnixTimestamp64Micro(now64(6))) FROM rollup_compact_day FINAL GROUP BY project_id, bucket, feature, model HAVING calls > 0;

