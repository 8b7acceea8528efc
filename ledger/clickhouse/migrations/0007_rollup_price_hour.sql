-- rollup_price_hour: the token parts the what-if re-prices (ledger/whatif.py), per hour and per
-- everything a target price can depend on, so re-pricing months of history reads a few thousand
-- rows instead of every call.
--
-- Keyed by the main dimensions (every /v1/usage filter but customer and user) plus the call's
-- service tier, whether it was streamed (the batch advice leaves streamed calls out), why it ended
-- and its error type (the output-length and error advice read their spend here) and its price
-- band: how many of ledger.measures.PRICE_BANDS its input exceeds. Every catalogue tier threshold
-- is one of those bands, so all the calls of one row sit in the same long-context tier of any
-- target; the what-if checks that each price it uses has only such thresholds and reads the raw
-- table otherwise. The sums leave app cache hits out (they stay at 0 at any price); `calls`,
-- `cache_hits` and `cost_pusd` count every call, as the ledger does. Recomputed with the hour tier
-- (ledger/rollups.py): complete rows under a new version, tombstones for vanished sets.
CREATE TABLE IF NOT EXISTS rollup_price_hour
(
    $main_keys,
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, feature, model, provider, route_version, route, environment, traffic, status,
          service_tier, streamed, finish_reason, error_type, price_band)
TTL bucket + INTERVAL $hour_ttl_days DAY;

-- Backfill from the calls already stored (the same sums ledger/rollups.py writes for a dirty hour;
-- ledger/tests/test_whatif.py checks the two agree). Later recomputes replace these rows (version 1).
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
