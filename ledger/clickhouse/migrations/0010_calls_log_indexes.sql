-- llm_calls: skip indexes for the calls log (ledger/calls_log.py), so that reading single calls
-- never needs a FINAL scan of the range.
--
-- call_ids: one bloom filter over the identifiers a user searches by (?q= on the calls log: event,
-- trace, request, session id or customer) and opens a group by (a trace, a session, one call). It is
-- one index over an array, not one index per column, because the search is a disjunction over the
-- columns: `has([event_id, trace_id, request_id, session_id, customer_id], q)` — an index per
-- column cannot skip a granule for an OR across columns; this one can. Readers must write the array
-- exactly as here (ledger.calls_log.IDS) for the index to apply. A trace id or event id sits in a
-- few granules, so a lookup reads those only; a busy customer is in most granules and the filter
-- then prunes little (its calls are found by reading in time order instead).
--
-- cost_top / latency_top: min-max per granule on the orders the "most expensive / slowest calls"
-- views sort by. With use_skip_indexes_for_top_k (on by default) `ORDER BY cost_pusd DESC LIMIT n`
-- skips every granule whose maximum is below the n-th value found so far.
--
-- Newest-first reads need no index: the sort key (project_id, toStartOfHour(timestamp), event_id)
-- already lets ClickHouse read one project's hours in reverse order and stop after the first page.
-- MATERIALIZE builds the indexes for parts written before this migration (a background mutation).
ALTER TABLE llm_calls
    ADD INDEX IF NOT EXISTS call_ids [event_id, trace_id, request_id, session_id, customer_id] TYPE bloom_filter(0.01) GRANULARITY 1,
    ADD INDEX IF NOT EXISTS cost_top cost_pusd TYPE minmax GRANULARITY 1,
    ADD INDEX IF NOT EXISTS latency_top latency_ms TYPE minmax GRANULARITY 1;
ALTER TABLE llm_calls MATERIALIZE INDEX call_ids;
ALTER TABLE llm_calls MATERIALIZE INDEX cost_top;
ALTER TABLE llm_calls MATERIALIZE INDEX latency_top;
