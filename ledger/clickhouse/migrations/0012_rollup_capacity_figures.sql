-- rollup_capacity_figures: the figures of rollup_capacity_day_figures and rollup_capacity_pool_day
-- (0008), which it replaces, per UTC day and now also per UTC hour (``grain``), for the models
-- (``pooled`` 0, ``members`` empty) and the pools (``pooled`` 1, ``members`` the models summed) in
-- one table: /v1/capacity reads every figure it needs in one pass (each table a query reads costs
-- it about as much as the reading), and a range on whole hours reads no minutes at its edges: its
-- whole days from the day rows, the whole hours around them from the hour rows, minutes only for a
-- partial hour at either end. An hour holds at most 60 minutes, so its top lists (at most 100) hold
-- every minute with traffic and never leave a p99 in doubt. Written by ledger/rollups.py (the
-- models', per dirty hour and day) and ledger/pool_days.py (the pools', for the pools configured
-- then, and a pool's whole history when a limit is saved or deleted); a pool's row is read only
-- while ``members`` are its current models. Small granules: a question reads a few hours of each
-- model at either end of its range, and a row carries five lists.
CREATE TABLE IF NOT EXISTS rollup_capacity_figures
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, provider, model, pooled, grain, bucket)
TTL bucket + INTERVAL $raw_ttl_days DAY
SETTINGS index_granularity = 128;

-- Backfill: the day rows as they are (their versions kept, so a later recompute replaces them),
-- and the models' hours from the minutes already rolled up (the figures ledger/rollups.py writes for
-- a dirty hour; ledger/tests/test_capacity_figures.py checks the two agree; version 1). The pools'
-- hours are written by their next recompute or refresh; until then the pools' minutes answer.
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

DROP TABLE IF EXISTS rollup_capacity_day_figures;
DROP TABLE IF EXISTS rollup_capacity_pool_day;
