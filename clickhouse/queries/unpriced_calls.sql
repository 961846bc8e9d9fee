-- Calls in [since, until) that reported usage but have no price (their cost is unknown, not 0),
-- newest first: what to add to the price file (the store prices them again on its next rollup build).
SELECT
    time, service, model, operation, service_tier, input_tokens, output_tokens,
    user_id AS user, endpoint, tenant, trace_id, span_id
FROM llm_usage FINAL
WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')} AND unpriced = 1
ORDER BY time DESC, trace_id, span_id
LIMIT {limit:UInt32}
