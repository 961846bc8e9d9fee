-- The `limit` users who cost most in a window, with filters, from the rollups of all five dimensions
-- (reports.py uses top_users_by_dimension when there is no filter but on users).
-- The window comes cut into whole `days` and `hours` and the partial hours at its ends (head and tail
-- spans) by spendscope/store/windows.py; each part is read from the rollup of its size (llm_usage_daily,
-- _hourly) or, for the partial hours, llm_usage_timeline.
--   where_keys    dimensions to filter on (user, endpoint, tenant, model, service), where_values their
--                 values (same order)
SELECT
    user_id AS user,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    sum(unpriced_calls) AS unpriced_calls,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM (
    SELECT tenant, user_id, endpoint, model, service,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_daily
    WHERE day IN {days:Array(Date)}
    UNION ALL
    SELECT tenant, user_id, endpoint, model, service,
        calls, input_tokens, output_tokens, cost_usd, unpriced_calls, usage_unavailable_calls, error_calls
    FROM llm_usage_hourly
    WHERE hour IN {hours:Array(DateTime('UTC'))}
    UNION ALL
    SELECT tenant, user_id, endpoint, model, service,
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
GROUP BY user
ORDER BY cost_usd DESC, user
LIMIT {limit:UInt32}
