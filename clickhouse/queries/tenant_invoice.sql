-- A tenant's invoice for one month (whole UTC days [since_day, until_day)), by a rollup dimension, from
-- the `usage` view per day (`grain`: day, or user_day by user): provider cost and billed cost = cost * (100 + margin) / 100, the
-- margin being the tenant's in force that day (tenant_margins), else default_margin_percent. Calls
-- without a price are counted in unpriced_calls, with their tokens: the invoice is incomplete then.
--   by            model | user | endpoint | service
SELECT
    key,
    sum(day_calls) AS calls,
    sum(day_priced) AS priced_calls,
    sum(day_unpriced) AS unpriced_calls,
    sum(day_input) AS input_tokens,
    sum(day_output) AS output_tokens,
    sum(day_cost) AS cost_usd,
    sum(day_billed) AS billed_usd
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
