-- A tenant's invoice for one month ([since, until)) by any dimension, e.g. attr:job_id (CV parsing,
-- question generation and interviews per job), from llm_usage (FINAL): provider cost and billed cost =
-- cost * (100 + margin) / 100, the margin being the tenant's in force that day, else
-- default_margin_percent. The same columns as tenant_invoice: NULL costs when a line has no priced call
-- and some of unknown cost, those calls and their tokens beside.
--   by            attr:KEY | user | endpoint | model | service | operation
SELECT
    key,
    count() AS calls,
    sum(call_input) AS input_tokens,
    sum(call_output) AS output_tokens,
    if(
        priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0,
        NULL,
        sum(ifNull(call_cost, toDecimal128(0, 18)))
    ) AS cost_usd,
    if(
        priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0,
        NULL,
        sum(ifNull(call_billed, toDecimal128(0, 18)))
    ) AS billed_usd,
    sum(call_priced) AS priced_calls,
    sum(call_unpriced) AS unpriced_calls,
    sum(call_unpriced * call_input) AS unpriced_input_tokens,
    sum(call_unpriced * call_output) AS unpriced_output_tokens,
    sum(call_unavailable) AS usage_unavailable_calls,
    sum(call_error) AS error_calls
FROM (
    SELECT
        if(
            startsWith({by:String}, 'attr:'),
            u.attributes[substring({by:String}, 6)],
            multiIf(
                {by:String} = 'model', u.model,
                {by:String} = 'user', u.user_id,
                {by:String} = 'endpoint', u.endpoint,
                {by:String} = 'service', u.service,
                {by:String} = 'operation', u.operation,
                ''
            )
        ) AS key,
        u.priced AS call_priced,
        u.unpriced AS call_unpriced,
        u.usage_unavailable AS call_unavailable,
        u.error AS call_error,
        u.input_tokens AS call_input,
        u.output_tokens AS call_output,
        u.cost_usd AS call_cost,
        toDecimal128(
            u.cost_usd * (100 + ifNull(m.margin_percent, {default_margin_percent:Decimal(9, 4)})) / 100, 18
        ) AS call_billed
    FROM (
        SELECT *, priced, unpriced, usage_unavailable, error, toDate(time) AS day
        FROM llm_usage FINAL
        WHERE tenant = {tenant:String}
            AND time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
    ) AS u
    ASOF LEFT JOIN (
        SELECT tenant, effective_from, margin_percent
        FROM tenant_margins FINAL
        WHERE tenant = {tenant:String}
    ) AS m
    ON u.tenant = m.tenant AND u.day >= m.effective_from
)
GROUP BY key
ORDER BY billed_usd DESC, key
SETTINGS join_use_nulls = 1
