-- Totals per UTC day, endpoint and model of [since, until) (the first and last days partial), with
-- filters on the rollup dimensions, from the `usage` view per day: calls, tokens, provider cost and
-- billed cost (cost * (100 + margin) / 100, the tenant's margin in force that day, else
-- default_margin_percent), the counts of calls of unknown cost beside them (spendscope/store/money.py)
-- and the quantities summed. Its rows add up (spendscope/store/breakdowns.py adds them as Costs) to the
-- totals of the window, of any whole days in it, per day, per month and per endpoint and model: the
-- overview's figures from one query.
--   where_keys    dimensions to filter on (endpoint, tenant, model, service, operation; user reads
--   where_values  the per-user grain), their values (same order)
--   grain         day | user_day (when the user is filtered on)
SELECT
    d.day AS day,
    toString(d.endpoint) AS endpoint,
    toString(d.model) AS model,
    sum(d.calls) AS calls,
    sum(d.input_tokens) AS input_tokens,
    sum(d.output_tokens) AS output_tokens,
    -- unknown, never $0: NULL when no call is priced and one has no known cost
    if(priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0, NULL, sum(d.cost_usd)) AS cost_usd,
    if(
        priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0,
        NULL,
        sum(toDecimal128(d.cost_usd * (100 + ifNull(m.margin_percent, {default_margin_percent:Decimal(9, 4)})) / 100, 18))
    ) AS billed_usd,
    sum(d.priced_calls) AS priced_calls,
    sum(d.unpriced_calls) AS unpriced_calls,
    sum(d.unpriced_input_tokens) AS unpriced_input_tokens,
    sum(d.unpriced_output_tokens) AS unpriced_output_tokens,
    sum(d.usage_unavailable_calls) AS usage_unavailable_calls,
    sum(d.error_calls) AS error_calls,
    sumMap(d.quantities) AS quantities
FROM (
    SELECT *, toDate(bucket) AS day
    FROM usage(grain = {grain:String}, since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')})
    WHERE arrayAll(
        (k, v) -> multiIf(
            k = 'user', user_id = v,
            k = 'endpoint', endpoint = v,
            k = 'tenant', tenant = v,
            k = 'model', model = v,
            k = 'service', service = v,
            k = 'operation', operation = v,
            false
        ),
        {where_keys:Array(String)},
        {where_values:Array(String)}
    )
) AS d
ASOF LEFT JOIN (SELECT tenant, effective_from, margin_percent FROM tenant_margins FINAL) AS m
    ON d.tenant = m.tenant AND d.day >= m.effective_from
GROUP BY day, endpoint, model
ORDER BY day, endpoint, model
SETTINGS join_use_nulls = 1
