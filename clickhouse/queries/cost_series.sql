-- Cost per UTC day or calendar month (`period`: day | month) in [since, until) (the first and last may
-- be partial), one series or one per value of a dimension, with filters, from the `usage` view at the
-- daily grain (`grain`: day, or user_day when the user is grouped or filtered on).
--   by            '' (one series) | user | endpoint | tenant | model | service | operation
--   column        the column of the dimension grouped by (any of them for one series)
--   where_keys    dimensions to filter on (same names), where_values their values (same order)
SELECT
    if({period:String} = 'month', toStartOfMonth(bucket), toDate(bucket)) AS period,
    if({by:String} = '', '', toString({column:Identifier})) AS key,
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
GROUP BY period, key
ORDER BY period, cost_usd DESC, key
