-- The `limit` users who cost most in [since, until), with filters, from the `usage` view per day and
-- user.
--   where_keys    dimensions to filter on (user, endpoint, tenant, model, service, operation),
--                 where_values their values (same order)
SELECT
    user_id AS user,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    -- unknown, never $0: NULL when no call is priced and one has no known cost (spendscope/store/money.py)
    if(priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0, NULL, sum(cost_usd)) AS cost_usd,
    sum(priced_calls) AS priced_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(unpriced_input_tokens) AS unpriced_input_tokens,
    sum(unpriced_output_tokens) AS unpriced_output_tokens,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM usage(grain = 'user_day', since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')})
WHERE arrayAll(
    (k, v) -> multiIf(
        k = 'user', user_id = v,
        k = 'endpoint', endpoint = v,
        k = 'tenant', tenant = v,
        k = 'model', model = v,
        k = 'service', service = v,
        k = 'operation', operation = v,
        false
    ),
    {where_keys:Array(String)},
    {where_values:Array(String)}
)
GROUP BY user
ORDER BY cost_usd DESC, user
LIMIT {limit:UInt32}
