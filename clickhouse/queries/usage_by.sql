-- Calls, tokens and cost in [since, until) by one dimension, with filters on any of these dimensions,
-- from the `usage` view (clean rollup buckets, and llm_usage FINAL for the rest: exact over any window).
--   grain         day (whole days from the daily rollup, whole hours from the hourly one) | user_day
--                 (whenever the user is grouped or filtered on: the others have no users) | hour
--   column        the column of the dimension grouped by: user_id | endpoint | tenant | model | service
--                 | operation (an identifier: a choice among columns per row costs more than the sums)
--   where_keys    dimensions to filter on (user, endpoint, tenant, model, service, operation),
--                 where_values their values (same order)
SELECT
    toString({column:Identifier}) AS key,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    -- unknown, never $0: NULL when no call is priced and one has no known cost (spendscope/store/money.py)
    if(priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0, NULL, sum(cost_usd)) AS cost_usd,
    sum(priced_calls) AS priced_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(unpriced_input_tokens) AS unpriced_input_tokens,
    sum(unpriced_output_tokens) AS unpriced_output_tokens,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls,
    sum(cost_mismatch_calls) AS cost_mismatch_calls
FROM usage(grain = {grain:String}, since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')})
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
GROUP BY key
ORDER BY cost_usd DESC, key
