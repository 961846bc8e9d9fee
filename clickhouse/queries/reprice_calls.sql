-- Internal (`spendscope reprice`): the current row of every call in [since, until) that reported
-- usage, with every llm_usage column, to be priced again (time in integer nanoseconds: written back
-- as is, it keeps the row's sorting key, so the old and new rows replace each other).
SELECT
    toUnixTimestamp64Nano(time) AS time_ns, service, trace_id, span_id, response_id, operation,
    provider, api_type, request_model, response_model, model, service_tier, request_service_tier, batch, input_tokens, output_tokens,
    cached_input_tokens, cache_write_input_tokens, reasoning_tokens, input_audio_tokens,
    output_audio_tokens, audio_seconds, cost_usd, price_version, usage_state, status, error_type,
    user_id, endpoint, tenant, attributes, openai_project, api_key_redacted, duration_ns, sign, version
FROM (
    SELECT *
    FROM llm_usage FINAL
    WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
)
WHERE sign = 1 AND status = 'ok' AND usage_state != 'unavailable'
ORDER BY time_ns, trace_id, span_id
