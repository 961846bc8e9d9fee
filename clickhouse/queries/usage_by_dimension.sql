-- Calls, tokens and cost in a window by one dimension, from llm_usage_by_dimension (one row per value
-- and month, week, day or hour bucket) and, for the partial hours at the window's ends,
-- llm_usage_timeline. spendscope/store/windows.py cuts the window into `buckets` to add,
-- `minus_buckets` to subtract (a day minus its first hours, ...: fewer rows, the same exact sums) and
-- the head and tail spans; reports.py picks this query when nothing else is grouped or filtered on.
--   dimension   user | endpoint | tenant | model | service
--   values      only these values of it (empty: every value)
SELECT
    key,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_usd) AS cost_usd,
    sum(unpriced_calls) AS unpriced_calls,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM (
    SELECT
        key, calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd,
        unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_by_dimension
    WHERE dimension = {dimension:String}
        AND (grain, bucket) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
    UNION ALL
    SELECT
        key, -calls, -input_tokens, -output_tokens, -cached_input_tokens, -reasoning_tokens, -cost_usd,
        -unpriced_calls, -usage_unavailable_calls, -error_calls
    FROM llm_usage_by_dimension
    WHERE dimension = {dimension:String}
        AND (grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))}
    UNION ALL
    SELECT
        multiIf(
            {dimension:String} = 'user', user_id,
            {dimension:String} = 'endpoint', endpoint,
            {dimension:String} = 'tenant', tenant,
            {dimension:String} = 'model', model,
            service
        ) AS key,
        calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd,
        unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_timeline
    WHERE (time >= {head_since:DateTime64(9, 'UTC')} AND time < {head_until:DateTime64(9, 'UTC')})
        OR (time >= {tail_since:DateTime64(9, 'UTC')} AND time < {tail_until:DateTime64(9, 'UTC')})
)
WHERE empty({values:Array(String)}) OR key IN {values:Array(String)}
GROUP BY key
ORDER BY cost_usd DESC, key
