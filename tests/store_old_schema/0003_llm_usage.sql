-- llm_usage: one typed row per LLM call, made by a materialized view from every span in otel_traces
-- whose SpanAttributes carry gen_ai.operation.name. Other spans stay in otel_traces only.
--
-- Attribute names are those of spendscope/names.py (a test checks every name used here against it).
-- All span attribute values are strings (the exporter's pcommon.Value.AsString()): numbers are parsed
-- here, a missing or unparsable token count is 0, and a missing or unparsable cost is NULL: unknown is
-- never $0.
--
-- Rows are versioned (ReplacingMergeTree(version)) and signed:
--   * the view writes every call with sign = 1, version = 0;
--   * `spendscope reprice` writes, for each call whose cost changes, a cancelling row (sign = -1, the
--     old values, the old version) and the new row (sign = 1, a higher version).
-- So `FROM llm_usage FINAL` (or any merge) leaves exactly one row per (trace_id, span_id): the latest
-- price, and a span inserted twice collapses to one row. The rollups, which are fed by every row
-- inserted here, sum sign * value, so a reprice moves them by exactly the difference.
CREATE TABLE IF NOT EXISTS llm_usage (
    time DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    service LowCardinality(String),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    response_id String CODEC(ZSTD(1)),
    operation LowCardinality(String),
    provider LowCardinality(String),
    api_type LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    -- the model the call is priced as: the response's model, else the requested one
    model LowCardinality(String),
    -- the tier OpenAI served (and priced) the call in, else the one requested
    service_tier LowCardinality(String),
    request_service_tier LowCardinality(String),
    batch Bool,
    input_tokens UInt64,
    output_tokens UInt64,
    cached_input_tokens UInt64,
    cache_write_input_tokens UInt64,
    reasoning_tokens UInt64,
    input_audio_tokens UInt64,
    output_audio_tokens UInt64,
    audio_seconds Float64,
    cost_usd Nullable(Decimal(38, 18)),
    price_version LowCardinality(String),
    usage_state LowCardinality(String),
    status LowCardinality(String),
    error_type LowCardinality(String),
    user_id String CODEC(ZSTD(1)),
    endpoint LowCardinality(String),
    tenant LowCardinality(String),
    -- spendscope.attr.* attributes with the prefix stripped (job_id, ...)
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    openai_project LowCardinality(String),
    api_key_redacted LowCardinality(String),
    duration_ns UInt64 CODEC(T64, ZSTD(1)),
    sign Int8,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, user_id, time, trace_id, span_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_usage_mv TO llm_usage AS
SELECT
    toDateTime64(Timestamp, 9, 'UTC') AS time,
    ServiceName AS service,
    TraceId AS trace_id,
    SpanId AS span_id,
    SpanAttributes['gen_ai.response.id'] AS response_id,
    SpanAttributes['gen_ai.operation.name'] AS operation,
    SpanAttributes['gen_ai.provider.name'] AS provider,
    SpanAttributes['openai.api.type'] AS api_type,
    SpanAttributes['gen_ai.request.model'] AS request_model,
    SpanAttributes['gen_ai.response.model'] AS response_model,
    if(response_model != '', response_model, request_model) AS model,
    if(
        SpanAttributes['openai.response.service_tier'] != '',
        SpanAttributes['openai.response.service_tier'],
        SpanAttributes['openai.request.service_tier']
    ) AS service_tier,
    SpanAttributes['openai.request.service_tier'] AS request_service_tier,
    SpanAttributes['spendscope.batch'] = 'true' AS batch,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']) AS input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']) AS output_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_read.input_tokens']) AS cached_input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.cache_creation.input_tokens']) AS cache_write_input_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.reasoning.output_tokens']) AS reasoning_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.audio.input_tokens']) AS input_audio_tokens,
    toUInt64OrZero(SpanAttributes['gen_ai.usage.audio.output_tokens']) AS output_audio_tokens,
    toFloat64OrZero(SpanAttributes['spendscope.usage.audio_seconds']) AS audio_seconds,
    -- accepts both forms doubles take as strings: 0.000123 and 1.5e-7
    toDecimal128OrNull(SpanAttributes['spendscope.cost.usd'], 18) AS cost_usd,
    SpanAttributes['spendscope.price.version'] AS price_version,
    SpanAttributes['spendscope.usage.state'] AS usage_state,
    -- the exporter writes status codes as Unset/Ok/Error (older releases: STATUS_CODE_ERROR)
    if(
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR SpanAttributes['error.type'] != '', 'error', 'ok'
    ) AS status,
    SpanAttributes['error.type'] AS error_type,
    SpanAttributes['user.id'] AS user_id,
    SpanAttributes['spendscope.endpoint'] AS endpoint,
    SpanAttributes['spendscope.tenant'] AS tenant,
    mapApply(
        (k, v) -> (substring(k, length('spendscope.attr.') + 1), v),
        mapFilter((k, v) -> startsWith(k, 'spendscope.attr.'), SpanAttributes)
    ) AS attributes,
    SpanAttributes['openai.project'] AS openai_project,
    SpanAttributes['openai.api_key.redacted'] AS api_key_redacted,
    Duration AS duration_ns,
    toInt8(1) AS sign,
    toUInt64(0) AS version
FROM otel_traces
WHERE mapContains(SpanAttributes, 'gen_ai.operation.name');
