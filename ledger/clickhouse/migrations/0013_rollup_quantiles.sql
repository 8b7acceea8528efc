-- rollup_quantile_hour / rollup_quantile_day: each bucket's p50/p95/p99 of latency and time to first
-- token, precomputed per grouping (ledger/quantiles.py: the whole project, feature, provider,
-- model, route version, provider+model, model+route version, provider+model+route version,
-- feature+model), with the bucket's sums. `grouped_by` names the grouping (its dimensions, sorted,
-- comma-joined); the dimensions outside it hold ''. Each percentile is the one merging the
-- bucket's TDigest states gives (quantilesTDigestMerge over the tier a query reads them from:
-- rollup_route_hour or rollup_hour per hour, rollup_compact_day per day), so an hourly or daily
-- latency chart reads one number per cell instead of merging thousands of sketches. The states
-- stay in those tiers for any other bucket, grouping or filter. Written by ledger/rollups.py for the
-- hours and days it recomputes (versions and tombstones like every tier; FINAL); NaN where no call
-- of the cell reported a latency (TTFT).
CREATE TABLE IF NOT EXISTS rollup_quantile_hour
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, grouped_by, bucket, feature, provider, model, route_version)
TTL bucket + INTERVAL $hour_ttl_days DAY;

-- Kept for good, like rollup_compact_day.
CREATE TABLE IF NOT EXISTS rollup_quantile_day
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, grouped_by, bucket, feature, provider, model, route_version);

-- Backfill from the tiers already rolled up: the statements ledger/quantiles.py runs for a dirty
-- hour (day), over every project and bucket (ledger/tests/test_quantiles.py checks they agree),
-- under a version above the rows' (the time in microseconds); later recomputes replace them.
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
