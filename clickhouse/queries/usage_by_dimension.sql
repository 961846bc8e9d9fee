-- Calls, tokens and cost in a window by one dimension, from llm_usage_by_dimension (one row per value
-- and month, week, day or hour bucket) and, for the partial hours at the window's ends,
-- llm_usage_timeline. spendscope/store/windows.py cuts the window into `buckets` to add,
-- `minus_buckets` to subtract (a day minus its first hours, ...: fewer rows, the same exact sums) and
-- the timeline's head and tail spans, each added (head_sign, tail_sign = 1: the partial hours inside
-- the window) or subtracted (-1: the buckets start or end outside the window, e.g. at the end of the
-- month for a window ending now, and the span between is taken off). Each table is scanned once,
-- each row signed (one plan and one hash table per table, not per UNION branch). A value whose rows
-- cancel out (no call in the window) is no row, as in a scan of llm_usage.
-- reports.py picks this query when nothing else is grouped or filtered on.
--   dimension   user | endpoint | tenant | model | service
--   column      its column in llm_usage_timeline: user_id | endpoint | tenant | model | service
--   values      only these values of it (empty: every value)
SELECT
    key,
    sum(sign * calls) AS calls,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cached_input_tokens) AS cached_input_tokens,
    sum(sign * reasoning_tokens) AS reasoning_tokens,
    sum(sign * cost_usd) AS cost_usd,
    sum(sign * unpriced_calls) AS unpriced_calls,
    sum(sign * usage_unavailable_calls) AS usage_unavailable_calls,
    sum(sign * error_calls) AS error_calls
FROM (
    SELECT
        key,
        if((grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))}, -1, 1) AS sign,
        calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd,
        unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_by_dimension
    WHERE dimension = {dimension:String}
        AND ((grain, bucket) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
            OR (grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))})
    UNION ALL
    SELECT
        {column:Identifier} AS key,
        if(time >= {tail_since:DateTime64(9, 'UTC')}, {tail_sign:Int8}, {head_sign:Int8}) AS sign,
        calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd,
        unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_timeline
    WHERE (time >= {head_since:DateTime64(9, 'UTC')} AND time < {head_until:DateTime64(9, 'UTC')})
        OR (time >= {tail_since:DateTime64(9, 'UTC')} AND time < {tail_until:DateTime64(9, 'UTC')})
)
WHERE empty({values:Array(String)}) OR key IN {values:Array(String)}
GROUP BY key
HAVING calls != 0
ORDER BY cost_usd DESC, key
