-- Calls, tokens, cost and quantities in [since, until) by two dimensions at once (endpoint x model, ...),
-- with filters on any of them, from the `usage` view (exact over any window; see usage_by.sql).
--   grain             day | user_day (whenever the user is grouped or filtered on)
--   column, column2   the columns grouped by: user_id | endpoint | tenant | model | service | operation
--   where_keys        dimensions to filter on, where_values their values (same order)
SELECT
    toString({column:Identifier}) AS key,
    toString({column2:Identifier}) AS key2,
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
    sum(error_calls) AS error_calls,
    sumMap(quantities) AS quantities
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
GROUP BY key, key2
ORDER BY cost_usd DESC, key, key2
