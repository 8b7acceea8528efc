-- llm_calls: one row per LLM call, append-only. The raw ledger every rollup is recomputed from.
--
-- Engine: ReplacingMergeTree(version). A call re-sent by a client (same event_id, same timestamp)
-- or re-inserted by a drain that died before marking its batch done collapses to one row; a
-- `reprice` appends the same call with a higher version, which wins. Readers that need exact
-- answers use FINAL (cheap here: merges never cross monthly partitions, and FINAL is applied per
-- partition). Retried inserts of one outbox batch are also dropped at insert time through
-- insert_deduplication_token, which plain MergeTree only honours with a deduplication window.
--
-- ORDER BY (project_id, toStartOfHour(timestamp), event_id): project first because every query is
-- for one project; the hour next so time ranges prune granules; event_id last so duplicates share
-- a sort key. The hour is part of a call's identity on purpose: rollups are recomputed per hour,
-- and a row can only replace another within the hour being recomputed, so rollups always equal
-- the raw table (a client that re-sends an event_id with a timestamp in another hour gets two
-- calls, not a silently moved one). Monthly partitions keep parts few; TTL drops whole months.
--
-- Money: integer pico-USD (1e-12 USD) in Int64, exact; one row is capped near 9.2 million USD.
-- Sums go through toInt128/Decimal128 in rollups for headroom.
CREATE TABLE IF NOT EXISTS llm_calls
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

    input_tokens        UInt64,  -- total input, including cache reads and writes
    cache_read_tokens   UInt64,
    cache_write_tokens  UInt64,
    output_tokens       UInt64,  -- total output, including reasoning
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

    -- pricing: the parts never overlap (uncached input = input - cache reads - cache writes)
    cost_input_pusd         Int64,
    cost_cache_read_pusd    Int64,
    cost_cache_write_pusd   Int64,
    cost_output_pusd        Int64,  -- output excluding reasoning
    cost_reasoning_pusd     Int64,
    cost_pusd               Int64,  -- what was paid: the provider-reported cost when given, else the parts' sum; 0 on an app cache hit
    cache_saving_pusd       Int64,  -- an app cache hit: what the call would have cost
    cost_source             Enum8('catalogue' = 1, 'override' = 2, 'reported' = 3, 'unpriced' = 4),
    price_ref               LowCardinality(String),
    version                 UInt64  -- pricing time in microseconds; the newest row of an event wins
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project_id, toStartOfHour(timestamp), event_id)
TTL toDateTime(timestamp) + INTERVAL $raw_ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;
