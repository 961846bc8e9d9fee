-- What one user cost in one month, by model: `since` and `until` are the first days (UTC) of the month
-- and of the next one. From the rollups.
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
FROM usage_window(since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')})
WHERE user_id = {user:String}
GROUP BY model
ORDER BY cost_usd DESC, model
