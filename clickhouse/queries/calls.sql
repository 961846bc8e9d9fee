-- One row per call in [since, until) (llm_usage FINAL: the latest price of each call), oldest first,
-- with provider cost and billed cost (the tenant's margin in force that day, else
-- default_margin_percent). A call without a price has NULL cost and billed cost. cost_source says who
-- priced it (store, or client where the deployment trusts client costs), client_cost_usd is what the
-- client sent, priced_model the name the price was found for.
--   where_keys    user | endpoint | tenant | model | service | operation | attr:KEY filters,
--   where_values  their values
--   limit         at most this many calls, the oldest (a terminal table shows the first ones only)
-- The calls are sorted and cut before the join, straight off llm_usage: there ClickHouse can sort the
-- keys alone and read the other columns of the rows it keeps (lazy materialization, which the
-- exports turn on where the server has it; sorting whole rows after the join costs 24 of 27.5 s
-- for 7 days).
SELECT
    u.time AS time, u.service AS service, u.trace_id AS trace_id, u.span_id AS span_id,
    u.response_id AS response_id, u.operation AS operation, u.api_type AS api_type,
    u.request_model AS request_model, u.response_model AS response_model, u.model AS model,
    u.service_tier AS service_tier, u.batch AS batch,
    u.input_tokens AS input_tokens, u.output_tokens AS output_tokens,
    u.cached_input_tokens AS cached_input_tokens, u.cache_write_input_tokens AS cache_write_input_tokens,
    u.reasoning_tokens AS reasoning_tokens, u.input_audio_tokens AS input_audio_tokens,
    u.output_audio_tokens AS output_audio_tokens, u.audio_seconds AS audio_seconds,
    u.cost_usd AS cost_usd, u.cost_source AS cost_source, u.client_cost_usd AS client_cost_usd,
    u.priced_model AS priced_model,
    ifNull(m.margin_percent, {default_margin_percent:Decimal(9, 4)}) AS margin_percent,
    toDecimal128(u.cost_usd * (100 + margin_percent) / 100, 18) AS billed_usd,
    u.price_version AS price_version, u.usage_state AS usage_state, u.status AS status,
    u.error_type AS error_type, u.user_id AS user, u.endpoint AS endpoint, u.tenant AS tenant,
    u.attributes AS attributes, u.openai_project AS openai_project,
    u.api_key_redacted AS api_key_redacted, u.duration_ns AS duration_ns
FROM (
    SELECT *, toDate(time) AS day
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
    ORDER BY time, trace_id, span_id
    LIMIT {limit:UInt64}
) AS u
ASOF LEFT JOIN (SELECT tenant, effective_from, margin_percent FROM tenant_margins FINAL) AS m
ON u.tenant = m.tenant AND u.day >= m.effective_from
ORDER BY time, trace_id, span_id
SETTINGS join_use_nulls = 1
