-- Provider cost, billed cost and quantities in [since, until) per job (the `job_id` attribute) and, with
-- `by2`, per job and one rollup dimension (endpoint: the per-job table's columns), from the `usage` view
-- per day and job (grain job_day: the days the window holds whole from the rollup, the rest from
-- llm_usage). The same rows as billing_pairs by attr:job_id, which reads llm_usage alone. Billed cost =
-- cost * (100 + margin) / 100, the tenant's margin in force that day, else default_margin_percent; NULL
-- costs when a row has no priced call and some of unknown cost (spendscope/store/money.py).
--   by2           '' | endpoint | tenant | model | service | operation
--   column2       its column (any rollup column when by2 is '')
--   where_keys    dimensions to filter on (endpoint, tenant, model, service, operation),
--   where_values  their values (same order)
SELECT
    d.job_id AS key,
    if({by2:String} = '', '', toString(d.{column2:Identifier})) AS key2,
    sum(d.calls) AS calls,
    sum(d.input_tokens) AS input_tokens,
    sum(d.output_tokens) AS output_tokens,
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
    FROM usage(grain = 'job_day', since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')})
    -- the tenant filter, if any, on its own too: a condition on one column, which ClickHouse takes into
    -- the view's reads (the generic filter below is checked on the rows they return)
    WHERE (
            indexOf({where_keys:Array(String)}, 'tenant') = 0
            OR tenant = {where_values:Array(String)}[indexOf({where_keys:Array(String)}, 'tenant')]
        )
        AND arrayAll(
            (k, v) -> multiIf(
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
GROUP BY key, key2
ORDER BY billed_usd DESC, key, key2
SETTINGS join_use_nulls = 1
