-- Cost per UTC day or calendar month (`period`: day | month) in a window, one series or one per
-- value of a dimension, from llm_usage_by_dimension (months for a monthly series, days and hours:
-- no bucket spans two periods) and, for the partial hours at the window's ends, llm_usage_timeline
-- (see usage_by_dimension: a subtracted bucket lies in the day or month of the bucket it is
-- subtracted from).
--   dimension   user | endpoint | tenant | model | service (for one series, any: every call is in each)
--   by          '' (one series) or the dimension
--   values      only these values of the dimension (empty: every value)
SELECT
    if({period:String} = 'month', toStartOfMonth(bucket), toDate(bucket)) AS period,
    if({by:String} = '', '', value) AS key,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    sum(unpriced_calls) AS unpriced_calls,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM (
    SELECT
        bucket, key AS value, calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls,
        error_calls
    FROM llm_usage_by_dimension
    WHERE dimension = {dimension:String}
        AND (grain, bucket) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
    UNION ALL
    SELECT
        bucket, key, -calls, -input_tokens, -output_tokens, -cost_usd, -unpriced_calls,
        -usage_unavailable_calls, -error_calls
    FROM llm_usage_by_dimension
    WHERE dimension = {dimension:String}
        AND (grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))}
    UNION ALL
    SELECT
        toDateTime(toStartOfHour(time), 'UTC') AS bucket,
        multiIf(
            {dimension:String} = 'user', user_id,
            {dimension:String} = 'endpoint', endpoint,
            {dimension:String} = 'tenant', tenant,
            {dimension:String} = 'model', model,
            service
        ) AS value,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_timeline
    WHERE (time >= {head_since:DateTime64(9, 'UTC')} AND time < {head_until:DateTime64(9, 'UTC')})
        OR (time >= {tail_since:DateTime64(9, 'UTC')} AND time < {tail_until:DateTime64(9, 'UTC')})
)
WHERE empty({values:Array(String)}) OR value IN {values:Array(String)}
GROUP BY period, key
ORDER BY period, cost_usd DESC, key
