-- A tenant's invoice for one month (whole UTC days [since_day, until_day)), by a rollup dimension, from
-- the `usage` view per day (`grain`: day, or user_day by user): provider cost and billed cost = cost *
-- (100 + margin) / 100, the margin being the tenant's in force that day (tenant_margins), else
-- default_margin_percent. The costs are the priced calls' (spendscope/store/money.py): NULL when a line
-- has no priced call and some of unknown cost (unpriced, or answered without usage), never 0; those
-- calls and their tokens are counted beside, and the invoice is incomplete then.
--   by            model | user | endpoint | service
SELECT
    key,
    sum(day_calls) AS calls,
    sum(day_input) AS input_tokens,
    sum(day_output) AS output_tokens,
    if(priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0, NULL, sum(day_cost)) AS cost_usd,
    if(priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0, NULL, sum(day_billed)) AS billed_usd,
    sum(day_priced) AS priced_calls,
    sum(day_unpriced) AS unpriced_calls,
    sum(day_unpriced_input) AS unpriced_input_tokens,
    sum(day_unpriced_output) AS unpriced_output_tokens,
    sum(day_unavailable) AS usage_unavailable_calls,
    sum(day_errors) AS error_calls
FROM (
    SELECT
        multiIf(
            {by:String} = 'model', d.model,
            {by:String} = 'user', d.user_id,
            {by:String} = 'endpoint', d.endpoint,
            {by:String} = 'service', d.service,
            ''
        ) AS key,
        d.calls AS day_calls,
        d.priced_calls AS day_priced,
        d.unpriced_calls AS day_unpriced,
        d.unpriced_input_tokens AS day_unpriced_input,
        d.unpriced_output_tokens AS day_unpriced_output,
        d.usage_unavailable_calls AS day_unavailable,
        d.error_calls AS day_errors,
        d.input_tokens AS day_input,
        d.output_tokens AS day_output,
        d.cost_usd AS day_cost,
        toDecimal128(
            d.cost_usd * (100 + ifNull(m.margin_percent, {default_margin_percent:Decimal(9, 4)})) / 100, 18
        ) AS day_billed
    FROM (
        SELECT *, toDate(bucket) AS day
        FROM usage(
            grain = {grain:String},
            since = toDateTime64({since_day:Date}, 9, 'UTC'),
            until = toDateTime64({until_day:Date}, 9, 'UTC')
        )
        WHERE tenant = {tenant:String}
    ) AS d
    ASOF LEFT JOIN (
        SELECT tenant, effective_from, margin_percent
        FROM tenant_margins FINAL
        WHERE tenant = {tenant:String}
    ) AS m
    ON d.tenant = m.tenant AND d.day >= m.effective_from
)
GROUP BY key
ORDER BY billed_usd DESC, key
SETTINGS join_use_nulls = 1
