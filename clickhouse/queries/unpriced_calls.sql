-- Calls in [since, until) that reported usage but have no price (their cost is unknown, not 0),
-- newest first: what to add to the price file before `spendscope reprice`.
SELECT
    time, service, model, operation, service_tier, input_tokens, output_tokens,
    user_id AS user, endpoint, tenant, trace_id, span_id
FROM (
    SELECT *
    FROM llm_usage FINAL
    WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
)
WHERE status = 'ok' AND usage_state != 'unavailable' AND cost_usd IS NULL
ORDER BY time DESC, trace_id, span_id
LIMIT {limit:UInt32}
