-- Cost per UTC day or calendar month (`period`: day | month) in a window, one series or one per
-- value of a dimension, from llm_usage_by_dimension (months for a monthly series, days and hours:
-- no bucket spans two periods) and, for the partial hours at the window's ends, llm_usage_timeline
-- (see usage_by_dimension: a subtracted bucket or timeline span lies in the day or month of the
-- bucket it is subtracted from).
--   dimension   user | endpoint | tenant | model | service (for one series, any: every call is in each)
--   column      its column in llm_usage_timeline: user_id | endpoint | tenant | model | service
--   by          '' (one series) or the dimension
--   values      only these values of the dimension (empty: every value)
SELECT
    if({period:String} = 'month', toStartOfMonth(bucket), toDate(bucket)) AS period,
    if({by:String} = '', '', value) AS key,
    sum(sign * calls) AS calls,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cost_usd) AS cost_usd,
    sum(sign * unpriced_calls) AS unpriced_calls,
    sum(sign * usage_unavailable_calls) AS usage_unavailable_calls,
    sum(sign * error_calls) AS error_calls
FROM (
    SELECT
        bucket, key AS value,
        if((grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))}, -1, 1) AS sign,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_by_dimension
    WHERE dimension = {dimension:String}
        AND ((grain, bucket) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
            OR (grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))})
    UNION ALL
    SELECT
        toDateTime(toStartOfHour(time), 'UTC') AS bucket,
        {column:Identifier} AS value,
        if(time >= {tail_since:DateTime64(9, 'UTC')}, {tail_sign:Int8}, {head_sign:Int8}) AS sign,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_timeline
    WHERE (time >= {head_since:DateTime64(9, 'UTC')} AND time < {head_until:DateTime64(9, 'UTC')})
        OR (time >= {tail_since:DateTime64(9, 'UTC')} AND time < {tail_until:DateTime64(9, 'UTC')})
)
WHERE empty({values:Array(String)}) OR value IN {values:Array(String)}
GROUP BY period, key
HAVING calls != 0
ORDER BY period, cost_usd DESC, key
