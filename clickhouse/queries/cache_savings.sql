-- What cached input saved in [since, until), by model: cached tokens * (input price - cached input
-- price), at the prices the store priced each call with (model_prices_current, the row of its priced
-- model, tier and batch in force that day; the per-token price of a cached token is stored as what it
-- adds to the input price, so the saving is minus that). Calls without a store price are counted in
-- unpriced_calls, their saving is unknown.
--   where_keys    user | endpoint | tenant | model | service | operation filters, where_values their values
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
        if(
            p.model = '',
            NULL,
            toDecimal128(
                roundBankers(
                    -p.per_cached_input[1 + arrayCount(t -> u.input_tokens > t, p.tier_above)]
                        * u.cached_input_tokens,
                    18
                ),
                18
            )
        ) AS saving
    FROM (
        SELECT
            model, input_tokens, cached_input_tokens, batch,
            lower(priced_model) AS priced_model_,
            if(batch, '', service_tier) AS price_tier_,
            toDate(time) AS day_
        FROM llm_usage FINAL
        WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
            AND cached_input_tokens > 0
            AND arrayAll(
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
    ) AS u
    ASOF LEFT JOIN model_prices_current AS p
        ON u.priced_model_ = p.model AND u.price_tier_ = p.service_tier AND u.batch = p.batch
        AND u.day_ >= p.effective_from
)
GROUP BY model
ORDER BY savings_usd DESC, model
SETTINGS join_use_nulls = 0
