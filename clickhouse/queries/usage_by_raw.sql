-- Calls, tokens and cost in [since, until) by any dimension, including extra attributes, read from
-- llm_usage itself (FINAL: one row per call, latest price). For groupings the rollups cannot answer.
--   by            user | endpoint | tenant | model | service | operation | service_tier | project
--                 | api_key | status | error_type | attr:KEY (a spendscope.attr.KEY attribute)
--   where_keys    dimensions to filter on (same names), where_values their values (same order)
SELECT
    if(
        startsWith({by:String}, 'attr:'),
        attributes[substring({by:String}, 6)],
        multiIf(
            {by:String} = 'user', user_id,
            {by:String} = 'endpoint', endpoint,
            {by:String} = 'tenant', tenant,
            {by:String} = 'model', model,
            {by:String} = 'service', service,
            {by:String} = 'operation', operation,
            {by:String} = 'service_tier', service_tier,
            {by:String} = 'project', openai_project,
            {by:String} = 'api_key', api_key_redacted,
            {by:String} = 'status', status,
            {by:String} = 'error_type', error_type,
            ''
        )
    ) AS key,
    count() AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    -- unknown, never $0: NULL when no call is priced and one has no known cost (spendscope/store/money.py)
    if(
        priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0,
        NULL,
        sum(ifNull(llm_usage.cost_usd, toDecimal128(0, 18)))
    ) AS cost_usd,
    sum(priced) AS priced_calls,
    sum(unpriced) AS unpriced_calls,
    sum(unpriced * llm_usage.input_tokens) AS unpriced_input_tokens,
    sum(unpriced * llm_usage.output_tokens) AS unpriced_output_tokens,
    sum(usage_unavailable) AS usage_unavailable_calls,
    sum(error) AS error_calls,
    sum(cost_mismatch) AS cost_mismatch_calls
FROM llm_usage FINAL
WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
    AND arrayAll(
        (k, v) -> if(
            startsWith(k, 'attr:'),
            attributes[substring(k, 6)] = v,
            multiIf(
                k = 'user', user_id = v,
                k = 'endpoint', endpoint = v,
                k = 'tenant', tenant = v,
                k = 'model', model = v,
                k = 'service', service = v,
                k = 'operation', operation = v,
                k = 'service_tier', service_tier = v,
                k = 'project', openai_project = v,
                k = 'api_key', api_key_redacted = v,
                k = 'status', status = v,
                k = 'error_type', error_type = v,
                false
            )
        ),
        {where_keys:Array(String)},
        {where_values:Array(String)}
    )
GROUP BY key
ORDER BY cost_usd DESC, key
