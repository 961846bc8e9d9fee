-- What cached input saved in [since, until), by model: cached tokens * (input price - cached input
-- price) at the prices in force on the day of each call (model_prices_current, same service tier).
-- Calls whose model has no price row are counted in unpriced_calls, their saving is unknown.
--   where_keys    user | endpoint | tenant | model | service filters, where_values their values
SELECT
    model,
    count() AS calls,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(ifNull(saving, toDecimal128(0, 18))) AS savings_usd,
    countIf(saving IS NULL) AS unpriced_calls
FROM (
    SELECT
        u.model AS model,
        u.cached_input_tokens AS cached_input_tokens,
        toDecimal128(
            u.cached_input_tokens * (p.input_mtok - ifNull(p.cached_input_mtok, p.input_mtok)) / 1000000, 18
        ) AS saving
    FROM (
        SELECT *, toDate(time) AS day
        FROM llm_usage FINAL
        WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
            AND cached_input_tokens > 0
    ) AS u
    ASOF LEFT JOIN (SELECT * FROM model_prices_current) AS p
    ON u.model = p.model AND u.service_tier = p.service_tier AND u.day >= p.effective_from
    WHERE arrayAll(
        (k, v) -> multiIf(
            k = 'user', u.user_id = v,
            k = 'endpoint', u.endpoint = v,
            k = 'tenant', u.tenant = v,
            k = 'model', u.model = v,
            k = 'service', u.service = v,
            false
        ),
        {where_keys:Array(String)},
        {where_values:Array(String)}
    )
)
GROUP BY model
ORDER BY savings_usd DESC, model
SETTINGS join_use_nulls = 1
