-- rollup_price_hour: the largest cost, latency, time to first token and tokens of one call in each
-- row, so that the "most expensive / slowest / largest calls" views (ledger.calls_log.ranked_calls)
-- read the raw table only in the hours that can hold the top calls instead of the whole range.
--
-- A row's maximum is one call's value, and distinct rows hold distinct calls: so if n rows have a
-- maximum of at least T, at least n calls do, and the top n calls all have a value of at least T
-- and lie in hours with a row maximum of at least T. Latency and TTFT are Nullable like the raw
-- columns (NULL: no call of the row reported one).
ALTER TABLE rollup_price_hour
    ADD COLUMN IF NOT EXISTS max_cost_pusd Int64 AFTER priced_reasoning_tokens,
    ADD COLUMN IF NOT EXISTS max_latency_ms Nullable(Float64) AFTER max_cost_pusd,
    ADD COLUMN IF NOT EXISTS max_ttft_ms Nullable(Float64) AFTER max_latency_ms,
    ADD COLUMN IF NOT EXISTS max_tokens UInt64 AFTER max_ttft_ms;

-- Backfill: every row again, with its maxima, under a version above the rows already stored (they
-- were written with the time in microseconds) and below every later recompute. The same sums and
-- maxima ledger/rollups.py writes for a dirty hour (ledger/tests/test_whatif.py checks they agree).
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
