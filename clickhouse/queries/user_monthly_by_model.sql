-- What one user cost in one calendar month (UTC), by model, from the `usage` view per day and user.
SELECT
    model,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    -- unknown, never $0: NULL when no call is priced and one has no known cost (spendscope/store/money.py)
    if(priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0, NULL, sum(cost_usd)) AS cost_usd,
    sum(priced_calls) AS priced_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(unpriced_input_tokens) AS unpriced_input_tokens,
    sum(unpriced_output_tokens) AS unpriced_output_tokens,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM usage(
    grain = 'user_day',
    since = toDateTime64({month:Date}, 9, 'UTC'),
    until = toDateTime64(addMonths({month:Date}, 1), 9, 'UTC')
)
WHERE user_id = {user:String}
GROUP BY model
ORDER BY cost_usd DESC, model
