-- llm_calls: the provider's rate-limit headers on each call's answer (CallRecord fields
-- ratelimit_limit_tokens, ratelimit_remaining_tokens, ratelimit_limit_requests,
-- ratelimit_remaining_requests, ratelimit_limit_input_tokens, ratelimit_limit_output_tokens).
-- Nullable, unlike the other added columns: 0 remaining is a real answer (the next call is a 429),
-- so "not sent" must differ from 0. Rows written before this migration read NULL.
ALTER TABLE llm_calls
    ADD COLUMN IF NOT EXISTS ratelimit_limit_tokens Nullable(UInt64) AFTER prompt_prefix_tokens_estimated,
    ADD COLUMN IF NOT EXISTS ratelimit_remaining_tokens Nullable(UInt64) AFTER ratelimit_limit_tokens,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_requests Nullable(UInt64) AFTER ratelimit_remaining_tokens,
    ADD COLUMN IF NOT EXISTS ratelimit_remaining_requests Nullable(UInt64) AFTER ratelimit_limit_requests,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_input_tokens Nullable(UInt64) AFTER ratelimit_remaining_requests,
    ADD COLUMN IF NOT EXISTS ratelimit_limit_output_tokens Nullable(UInt64) AFTER ratelimit_limit_input_tokens;
