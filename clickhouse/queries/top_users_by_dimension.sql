-- The `limit` users who cost most in a window, from the user rows of llm_usage_by_dimension and, for
-- the partial hours at the window's ends, llm_usage_timeline (buckets and timeline spans added or
-- subtracted: see usage_by_dimension).
--   values      only these users (empty: every user)
SELECT
    user,
    sum(sign * calls) AS calls,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cost_usd) AS cost_usd,
    sum(sign * unpriced_calls) AS unpriced_calls,
    sum(sign * usage_unavailable_calls) AS usage_unavailable_calls,
    sum(sign * error_calls) AS error_calls
FROM (
    SELECT
        key AS user,
        if((grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))}, -1, 1) AS sign,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_by_dimension
    WHERE dimension = 'user'
        AND ((grain, bucket) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
            OR (grain, bucket) IN {minus_buckets:Array(Tuple(String, DateTime('UTC')))})
    UNION ALL
    SELECT
        user_id AS user,
        if(time >= {tail_since:DateTime64(9, 'UTC')}, {tail_sign:Int8}, {head_sign:Int8}) AS sign,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_timeline
    WHERE (time >= {head_since:DateTime64(9, 'UTC')} AND time < {head_until:DateTime64(9, 'UTC')})
        OR (time >= {tail_since:DateTime64(9, 'UTC')} AND time < {tail_until:DateTime64(9, 'UTC')})
)
WHERE empty({values:Array(String)}) OR user IN {values:Array(String)}
GROUP BY user
HAVING calls != 0
ORDER BY cost_usd DESC, user
LIMIT {limit:UInt32}
