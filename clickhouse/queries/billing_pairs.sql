-- Provider cost, billed cost and quantities in [since, until) by one or two dimensions of any kind
-- (attr:job_id x endpoint: one row per job and endpoint), read from llm_usage (FINAL: one row per call,
-- latest price), for the dimensions the rollups do not hold. Billed cost = cost * (100 + margin) / 100,
-- the tenant's margin in force on the call's UTC day, else default_margin_percent; NULL costs when a row
-- has no priced call and some of unknown cost (spendscope/store/money.py), those calls counted beside.
--   by, by2       user | endpoint | tenant | model | service | operation | attr:KEY; by2 '' for one
--   where_keys    the same dimensions to filter on, where_values their values (same order)
SELECT
    key,
    key2,
    count() AS calls,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    if(
        priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0,
        NULL,
        sum(ifNull(u.cost_usd, toDecimal128(0, 18)))
    ) AS cost_usd,
    if(
        priced_calls = 0 AND unpriced_calls + usage_unavailable_calls > 0,
        NULL,
        sum(ifNull(
            toDecimal128(u.cost_usd * (100 + ifNull(m.margin_percent, {default_margin_percent:Decimal(9, 4)})) / 100, 18),
            toDecimal128(0, 18)
        ))
    ) AS billed_usd,
    sum(u.priced) AS priced_calls,
    sum(u.unpriced) AS unpriced_calls,
    sum(u.unpriced * u.input_tokens) AS unpriced_input_tokens,
    sum(u.unpriced * u.output_tokens) AS unpriced_output_tokens,
    sum(u.usage_unavailable) AS usage_unavailable_calls,
    sum(u.error) AS error_calls,
    sumMap(u.quantities) AS quantities
FROM (
    SELECT
        tenant, input_tokens, output_tokens, cost_usd, priced, unpriced, usage_unavailable, error, quantities,
        toDate(time) AS day,
        arrayMap(
            d -> if(
                startsWith(d, 'attr:'),
                attributes[substring(d, 6)],
                multiIf(
                    d = 'user', user_id,
                    d = 'endpoint', endpoint,
                    d = 'tenant', tenant,
                    d = 'model', model,
                    d = 'service', service,
                    d = 'operation', operation,
                    ''
                )
            ),
            [{by:String}, {by2:String}]
        ) AS keys_,
        keys_[1] AS key,
        keys_[2] AS key2
    FROM llm_usage FINAL
    WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
        -- the tenant filter, if any, on its own too: a condition on one column of the key, which ClickHouse
        -- checks first (the generic filter below reads every column it may name, attributes included)
        AND (
            indexOf({where_keys:Array(String)}, 'tenant') = 0
            OR tenant = {where_values:Array(String)}[indexOf({where_keys:Array(String)}, 'tenant')]
        )
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
                    false
                )
            ),
            {where_keys:Array(String)},
            {where_values:Array(String)}
        )
) AS u
ASOF LEFT JOIN (SELECT tenant, effective_from, margin_percent FROM tenant_margins FINAL) AS m
    ON u.tenant = m.tenant AND u.day >= m.effective_from
GROUP BY key, key2
ORDER BY billed_usd DESC, key, key2
SETTINGS join_use_nulls = 1
