-- Cost per UTC day or calendar month (`period`: day | month) in a window (the first and last
-- may be partial), one series or one per value of a rollup dimension, with filters, from the
-- rollups of all five dimensions.
-- The window comes cut into whole `days` and `hours` and the partial hours at its ends (head and tail
-- spans) by spendscope/store/windows.py; each part is read from the rollup of its size (llm_usage_daily,
-- _hourly) or, for the partial hours, llm_usage_timeline.
--   by            '' (one series) | user | endpoint | tenant | model | service
--   where_keys    dimensions to filter on (user, endpoint, tenant, model, service), where_values their
--                 values (same order)
SELECT
    if({period:String} = 'month', toStartOfMonth(bucket), toDate(bucket)) AS period,
    multiIf(
        {by:String} = 'user', user_id,
        {by:String} = 'endpoint', endpoint,
        {by:String} = 'tenant', tenant,
        {by:String} = 'model', model,
        {by:String} = 'service', service,
        ''
    ) AS key,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    sum(unpriced_calls) AS unpriced_calls,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM (
    SELECT toDateTime(day, 'UTC') AS bucket, tenant, user_id, endpoint, model, service,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_daily
    WHERE day IN {days:Array(Date)}
    UNION ALL
    SELECT hour AS bucket, tenant, user_id, endpoint, model, service,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_hourly
    WHERE hour IN {hours:Array(DateTime('UTC'))}
    UNION ALL
    SELECT toDateTime(toStartOfHour(time), 'UTC') AS bucket, tenant, user_id, endpoint, model, service,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_timeline
    WHERE (time >= {head_since:DateTime64(9, 'UTC')} AND time < {head_until:DateTime64(9, 'UTC')})
        OR (time >= {tail_since:DateTime64(9, 'UTC')} AND time < {tail_until:DateTime64(9, 'UTC')})
)
WHERE (NOT has({where_keys:Array(String)}, 'user') OR user_id = {where_values:Array(String)}[indexOf({where_keys:Array(String)}, 'user')])
    AND (NOT has({where_keys:Array(String)}, 'endpoint') OR endpoint = {where_values:Array(String)}[indexOf({where_keys:Array(String)}, 'endpoint')])
    AND (NOT has({where_keys:Array(String)}, 'tenant') OR tenant = {where_values:Array(String)}[indexOf({where_keys:Array(String)}, 'tenant')])
    AND (NOT has({where_keys:Array(String)}, 'model') OR model = {where_values:Array(String)}[indexOf({where_keys:Array(String)}, 'model')])
    AND (NOT has({where_keys:Array(String)}, 'service') OR service = {where_values:Array(String)}[indexOf({where_keys:Array(String)}, 'service')])
GROUP BY period, key
ORDER BY period, cost_usd DESC, key
