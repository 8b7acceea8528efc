-- llm_calls: why a call ended and the identity and size of its prompt's stable leading part
-- (CallRecord fields finish_reason, prompt_prefix_hash, prompt_prefix_tokens and
-- prompt_prefix_tokens_estimated). Rows written before this migration read the defaults: '' (not
-- known), '' and 0 (no prefix given), false.
--
-- finish_reason is LowCardinality(String), not an Enum: the API validates the values, and a value
-- added later needs no migration. prompt_prefix_tokens is a plain UInt32 where 0 means "not given":
-- a stable prefix of zero tokens says nothing, so absent and 0 need not differ.
ALTER TABLE llm_calls
    ADD COLUMN IF NOT EXISTS finish_reason LowCardinality(String) DEFAULT '' AFTER max_tokens,
    ADD COLUMN IF NOT EXISTS prompt_prefix_hash String DEFAULT '' AFTER finish_reason,
    ADD COLUMN IF NOT EXISTS prompt_prefix_tokens UInt32 DEFAULT 0 AFTER prompt_prefix_hash,
    ADD COLUMN IF NOT EXISTS prompt_prefix_tokens_estimated Bool DEFAULT false AFTER prompt_prefix_tokens;
