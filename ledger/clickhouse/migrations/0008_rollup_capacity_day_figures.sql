-- rollup_capacity_day_figures: one short row per (project, provider, model, UTC day) with the day's
-- figures, merged from rollup_capacity_minute (ledger/rollups.py; recomputed per dirty day,
-- tombstones, FINAL). It replaces rollup_capacity_day (0006), whose rows held each day's minutes as
-- an array and every minute sorted per measure: /v1/capacity read ~60 KB a day and model to use a
-- few numbers of it. What needs minutes (a pool's minute-by-minute sums, the range's partial edge
-- days, the peak day's curve) reads rollup_capacity_minute, sorted by model then time.
--
-- Per measure (tpm, itpm, uncached itpm, otpm, rpm): the day's peak minute and its 100 largest
-- minutes, largest first (top_*: the whole day when it had 100 minutes with traffic or fewer). The
-- nearest-rank p99 of a range is its k-th largest minute, k = n − ⌈0.99·n⌉ + 1 (≈ 1 % of the
-- range's minutes with traffic, ≈ 14 a day): ledger/capacity.py takes it from these lists and
-- falls back to the minutes when one day alone might hold more than 100 of the range's top k.
-- Also: the peak's key (tpm · 2048 + 1439 − the minute of the day: its largest value is the
-- earliest minute of the largest tpm), the minutes with traffic, the 429s and the latest observed
-- limits. Every figure is an exact integer, equal to the raw table's.
CREATE TABLE IF NOT EXISTS rollup_capacity_day_figures
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL $raw_ttl_days DAY;

-- Backfill from the minutes already rolled up (the figures ledger/rollups.py writes for a dirty
-- day; ledger/tests/test_capacity_figures.py checks the two agree). Later recomputes replace these
-- rows (version 1).
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

-- rollup_capacity_pool_day: the same figures for each pool (a limit shared by several models,
-- ledger.models.RateLimit) and UTC day, its models summed minute by minute; ``members`` are the
-- models it summed. Written with the day figures by the rollup for the pools configured then, and
-- for a pool's whole history when it is created or changed (ledger.pool_days). /v1/capacity reads
-- a row only while ``members`` are the pool's current models; other days read the minute tier.
CREATE TABLE IF NOT EXISTS rollup_capacity_pool_day
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(bucket)
ORDER BY (project_id, provider, model, bucket)
TTL bucket + INTERVAL $raw_ttl_days DAY;

DROP TABLE IF EXISTS rollup_capacity_day;
