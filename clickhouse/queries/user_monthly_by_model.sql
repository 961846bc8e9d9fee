-- What one user cost in one calendar month (UTC), by model: the user's rows of the daily rollup for
-- the month's days (the user_id bloom filter of 0007 skips the granules of other users).
SELECT
    model,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(cost_usd) AS cost_usd,
    sum(unpriced_calls) AS unpriced_calls,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM llm_usage_daily
WHERE user_id = {user:String} AND day >= {month:Date} AND day < addMonths({month:Date}, 1)
GROUP BY model
ORDER BY cost_usd DESC, model
