-- SpendScope's store: raw spans, one priced row per LLM call, and rollups derived from those rows.
--
--   otel_traces ──llm_calls_in_mv──> llm_calls_in (Null: parsed and checked, nothing stored)
--        │                               ├──llm_usage_mv──────────> llm_usage (one row per call, priced)
--        │                               ├──llm_usage_rejected_mv─> llm_usage_rejected (why not, and what)
--        │                               └──llm_models_seen_mv────> llm_models_seen (names without a price row)
--        └──otel_traces_trace_id_ts_mv──> otel_traces_trace_id_ts (the exporter's trace lookup)
--   llm_usage ──rollup builder (spendscope/store/rollups.py)──> llm_usage_rollup + rollup_builds
--   usage(grain, since, until): exact usage over any window, from clean rollup buckets and llm_usage
--
-- Counting: llm_usage is keyed by the span, so `FINAL` keeps one row per (trace_id, span_id) however
-- often, in however many blocks and by whichever collector the span was written. Nothing sums inserted
-- rows: the rollups are computed from llm_usage FINAL, and a bucket of them is read only while no row
-- of llm_usage in it is newer than its build (see `usage` at the end of this file).
-- Attribute names are those of spendscope/names.py (a test checks every name used here against it).

-- --- raw spans ------------------------------------------------------------------------------------------
-- The OpenTelemetry Collector (contrib) `clickhouse` exporter's own DDL for spans, verbatim from its
-- templates (exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql, traces_id_ts_lookup_*.sql)
-- rendered as the exporter renders it with its defaults (table otel_traces, engine MergeTree(), no cluster,
-- no TTL; `spendscope migrate` sets the retention as a TTL). So the OTel Collector (create_schema: false)
-- and `spendscope collector` write the very same table. The one template construct kept is the
-- exporter's `HasFullTextSearch` switch: the migration runner renders the text-index branch on
-- ClickHouse >= 26.2 (chdb 26.x included) and the bloom-filter branch on older servers, as the exporter.
CREATE TABLE IF NOT EXISTS otel_traces (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    ResourceAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(ResourceAttributes, 'Array(Tuple(String, String))')),
    SpanAttributeItems Array(String) ALIAS arrayMap(kv -> concat(kv.1, '=', kv.2), CAST(SpanAttributes, 'Array(Tuple(String, String))')),
{{- if .HasFullTextSearch}}
    INDEX idx_trace_id TraceId TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_res_attr_items ResourceAttributeItems TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE text(tokenizer = 'array'),
    INDEX idx_span_attr_items SpanAttributeItems TYPE text(tokenizer = 'array'),
{{- else}}
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
{{- end}}
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_lower_span_name lower(SpanName) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = AggregatingMergeTree()
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_traces_trace_id_ts_mv
TO otel_traces_trace_id_ts
AS SELECT
    TraceId,
    min(toDateTime(Timestamp)) AS Start,
    max(toDateTime(Timestamp)) AS End
FROM otel_traces
WHERE TraceId != ''
GROUP BY TraceId;

-- --- settings and prices --------------------------------------------------------------------------------
-- Deployment settings the views read (written by `spendscope migrate` from spendscope/settings.py):
--   trust_client_costs   '1': a call whose model has no price takes the cost its client sent
--   raw_retention_days   days of otel_traces and llm_usage kept ('0': all), rollup_retention_days likewise
CREATE TABLE IF NOT EXISTS store_settings (
    name LowCardinality(String),
    value String,
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY name;

-- Prices as the store applies them, from the same Pricer as the instrumentation's (genai-prices and the
-- user's price file; spendscope/store/prices.py). One row per name a call may carry (lower case), service
-- tier ('' for batch calls, which have one rate), batch flag and UTC day from which it applies. `priced`
-- false: the name is known to have no price (its calls' cost is unknown, never 0). Otherwise USD per call,
-- per token of each count (a subset's price is what it adds to its total's: a cached token's is the
-- cached price minus the input price) and per hour of duration-billed audio, for each long-context
-- segment: segment i + 1 applies to calls with more input tokens than tier_above[i]. A load writes a
-- generation and then publishes it in price_generations; only the latest published one is read.
CREATE TABLE IF NOT EXISTS model_prices (
    generation UInt64,
    model LowCardinality(String),
    service_tier LowCardinality(String),
    batch Bool,
    effective_from Date,
    priced Bool,
    tier_above Array(UInt64),
    per_call Array(Decimal(38, 24)),
    per_input Array(Decimal(38, 24)),
    per_cached_input Array(Decimal(38, 24)),
    per_cache_write_input Array(Decimal(38, 24)),
    per_input_audio Array(Decimal(38, 24)),
    per_cached_input_audio Array(Decimal(38, 24)),
    per_output Array(Decimal(38, 24)),
    per_output_audio Array(Decimal(38, 24)),
    per_reasoning Array(Decimal(38, 24)),
    per_audio_hour Array(Decimal(38, 24)),
    price_version LowCardinality(String)
) ENGINE = MergeTree
ORDER BY (generation, model, service_tier, batch, effective_from);

CREATE TABLE IF NOT EXISTS price_generations (
    generation UInt64,
    signature String,
    loaded_at DateTime64(6, 'UTC')
) ENGINE = MergeTree
ORDER BY generation;

CREATE VIEW IF NOT EXISTS model_prices_current AS
SELECT *
FROM model_prices
WHERE generation = (SELECT max(generation) FROM price_generations);

-- Billing: the margin a tenant is billed on top of provider cost, in force from `effective_from`
-- (a UTC date) until the tenant's next row. Tenants without a row get the default margin
-- (SPENDSCOPE_MARGIN_PERCENT, 0 if unset), bound as a query parameter. Read with FINAL.
CREATE TABLE IF NOT EXISTS tenant_margins (
    tenant LowCardinality(String),
    effective_from Date,
    margin_percent Decimal(9, 4),
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, effective_from);

-- --- calls ----------------------------------------------------------------------------------------------
-- Every span with gen_ai.operation.name, parsed and checked, as the input of the views below. A Null
-- table stores nothing; `spendscope reprice` and the rollup builder's price step insert rows of
-- llm_usage here again (with a higher version) to have them priced anew by the same view.
-- `rejected`: why the span is not stored as a call ('' = it is); `dropped`: a value the call is stored
-- without (an implausible client cost). `sent`: the span's usage and cost attributes as sent, kept with a
-- rejection.
CREATE TABLE IF NOT EXISTS llm_calls_in (
    time DateTime64(9, 'UTC'),
    service LowCardinality(String),
    trace_id String,
    span_id String,
    response_id String,
    operation LowCardinality(String),
    provider LowCardinality(String),
    api_type LowCardinality(String),
    request_model LowCardinality(String),
    response_model LowCardinality(String),
    service_tier LowCardinality(String),
    request_service_tier LowCardinality(String),
    batch Bool,
    input_tokens UInt64,
    output_tokens UInt64,
    cached_input_tokens UInt64,
    cache_write_input_tokens UInt64,
    reasoning_tokens UInt64,
    input_audio_tokens UInt64,
    cached_input_audio_tokens UInt64,
    output_audio_tokens UInt64,
    audio_seconds Float64,
    client_cost_usd Nullable(Decimal(38, 18)),
    usage_state LowCardinality(String),
    status LowCardinality(String),
    error_type LowCardinality(String),
    user_id String,
    endpoint LowCardinality(String),
    tenant LowCardinality(String),
    attributes Map(LowCardinality(String), String),
    quantities Map(LowCardinality(String), Float64),
    openai_project LowCardinality(String),
    api_key_redacted LowCardinality(String),
    duration_ns UInt64,
    rejected LowCardinality(String),
    dropped LowCardinality(String),
    sent Map(LowCardinality(String), String),
    version UInt64
) ENGINE = Null;

-- Limits no call of any model reaches, which keep every sum far from overflowing: at most 10^8 tokens
-- of each kind per call (the largest context windows are ~10^6), so a UInt64 token sum holds 1.8 * 10^11
-- such calls; at most 10^6 seconds of audio; a client cost of at most $100,000 (the dearest model billing
-- 10^8 output tokens: $60,000); and prices of at most $10,000 per million tokens (checked where prices are
-- loaded), so a call costs at most ~$10^7 and a Decimal(38, 18) sum holds ~10^13 calls. Quantities at
-- most 10^15 each.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_in_mv TO llm_calls_in AS
WITH
    SpanAttributes AS a,
    -- token counts as sent: absent (or empty) is 0, anything but a base-10 integer is NULL (one lookup
    -- of each key: a lambda over the keys cost three times the whole view)
    arrayMap(
        v -> if(v = '', toInt256(0), toInt256OrNull(v)),
        [
            a['gen_ai.usage.input_tokens'], a['gen_ai.usage.output_tokens'],
            a['gen_ai.usage.cache_read.input_tokens'], a['gen_ai.usage.cache_creation.input_tokens'],
            a['gen_ai.usage.reasoning.output_tokens'], a['gen_ai.usage.audio.input_tokens'],
            a['spendscope.usage.audio.cache_read.input_tokens'], a['gen_ai.usage.audio.output_tokens']
        ]
    ) AS tokens_,
    arrayMap(t -> toUInt64(greatest(least(ifNull(t, 0), 100000000), 0)), tokens_) AS counts_,
    -- input, output, cached, cache write, reasoning, input audio, cached input audio, output audio
    counts_[1] AS in_, counts_[2] AS out_, counts_[3] AS cached_, counts_[4] AS write_, counts_[5] AS reasoning_,
    counts_[6] AS in_audio_, counts_[7] AS cached_audio_, counts_[8] AS out_audio_,
    mapContains(a, 'spendscope.usage.audio_seconds') AS has_seconds_,
    toFloat64OrNull(a['spendscope.usage.audio_seconds']) AS seconds_,
    mapContains(a, 'spendscope.cost.usd') AS has_cost_,
    -- accepts both forms doubles take as strings (0.000123 and 1.5e-7) and exact decimal strings
    toDecimal128OrNull(a['spendscope.cost.usd'], 18) AS cost_,
    mapFilter((k, v) -> startsWith(k, 'spendscope.quantity.'), a) AS quantity_attrs_,
    arrayMap(v -> toFloat64OrNull(v), mapValues(quantity_attrs_)) AS quantity_values_,
    multiIf(
        arrayExists(t -> t IS NULL, tokens_), 'token_count_not_an_integer',
        arrayExists(t -> t < 0, tokens_), 'token_count_negative',
        arrayExists(t -> t > 100000000, tokens_), 'token_count_too_large',
        cached_ > in_ OR write_ > in_ - cached_ OR in_audio_ > in_ OR cached_audio_ > least(cached_, in_audio_)
            OR reasoning_ > out_ OR out_audio_ > out_, 'token_counts_inconsistent',
        has_seconds_ AND (seconds_ IS NULL OR NOT isFinite(seconds_) OR seconds_ < 0 OR seconds_ > 1000000),
            'audio_seconds_invalid',
        arrayExists(v -> v IS NULL OR NOT isFinite(v) OR v < 0 OR v > 1e15, quantity_values_), 'quantity_invalid',
        ''
    ) AS rejected_,
    has_cost_ AND (cost_ IS NULL OR cost_ < 0 OR cost_ > 100000) AS bad_cost_
SELECT
    toDateTime64(Timestamp, 9, 'UTC') AS time,
    ServiceName AS service,
    TraceId AS trace_id,
    SpanId AS span_id,
    a['gen_ai.response.id'] AS response_id,
    a['gen_ai.operation.name'] AS operation,
    a['gen_ai.provider.name'] AS provider,
    a['openai.api.type'] AS api_type,
    a['gen_ai.request.model'] AS request_model,
    a['gen_ai.response.model'] AS response_model,
    -- the tier OpenAI served (and priced) the call in, else the one requested
    if(
        a['openai.response.service_tier'] != '',
        a['openai.response.service_tier'],
        a['openai.request.service_tier']
    ) AS service_tier,
    a['openai.request.service_tier'] AS request_service_tier,
    a['spendscope.batch'] = 'true' AS batch,
    in_ AS input_tokens,
    out_ AS output_tokens,
    cached_ AS cached_input_tokens,
    write_ AS cache_write_input_tokens,
    reasoning_ AS reasoning_tokens,
    in_audio_ AS input_audio_tokens,
    cached_audio_ AS cached_input_audio_tokens,
    out_audio_ AS output_audio_tokens,
    if(rejected_ = '', ifNull(seconds_, 0), 0) AS audio_seconds,
    if(bad_cost_, NULL, cost_) AS client_cost_usd,
    a['spendscope.usage.state'] AS usage_state,
    -- the exporter writes status codes as Unset/Ok/Error (older releases: STATUS_CODE_ERROR)
    if(StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR a['error.type'] != '', 'error', 'ok') AS status,
    a['error.type'] AS error_type,
    a['user.id'] AS user_id,
    a['spendscope.endpoint'] AS endpoint,
    a['spendscope.tenant'] AS tenant,
    mapApply(
        (k, v) -> (substring(k, length('spendscope.attr.') + 1), v),
        mapFilter((k, v) -> startsWith(k, 'spendscope.attr.'), a)
    ) AS attributes,
    if(
        rejected_ = '',
        mapApply((k, v) -> (substring(k, length('spendscope.quantity.') + 1), toFloat64(v)), quantity_attrs_),
        map()
    ) AS quantities,
    a['openai.project'] AS openai_project,
    a['openai.api_key.redacted'] AS api_key_redacted,
    Duration AS duration_ns,
    rejected_ AS rejected,
    if(bad_cost_, 'client_cost_invalid', '') AS dropped,
    if(
        rejected_ != '' OR bad_cost_,
        mapFilter(
            (k, v) -> startsWith(k, 'gen_ai.usage.') OR startsWith(k, 'spendscope.quantity.')
                OR k IN (
                    'spendscope.usage.audio_seconds', 'spendscope.usage.audio.cache_read.input_tokens',
                    'spendscope.cost.usd', 'gen_ai.response.model'
                ),
            a
        ),
        map()
    ) AS sent,
    toUInt64(0) AS version
FROM otel_traces
WHERE mapContains(SpanAttributes, 'gen_ai.operation.name');

-- One typed row per LLM call, priced by the store. ReplacingMergeTree(version) keyed by the span (every
-- part of the key is a property of the span, so copies of it share the key): FINAL, or a merge, keeps
-- one row per (trace_id, span_id), the highest version (a reprice), else the last written.
-- The kinds of calls are columns computed on insert, summed by the rollups (each call is exactly one of
-- the last four): priced (cost known), and error (the call failed), usage_unavailable (answered, no
-- usage arrived: a stream abandoned early), unpriced (usage known, no price: its cost is unknown, not 0).
-- `inserted_at` (when the row was written) lets a rollup bucket tell that it is stale (see `usage`).
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
    -- the model the call is reported under: the response's model, else the requested one
    model LowCardinality(String),
    service_tier LowCardinality(String),
    request_service_tier LowCardinality(String),
    batch Bool,
    input_tokens UInt64,
    output_tokens UInt64,
    cached_input_tokens UInt64,
    cache_write_input_tokens UInt64,
    reasoning_tokens UInt64,
    input_audio_tokens UInt64,
    cached_input_audio_tokens UInt64,
    output_audio_tokens UInt64,
    audio_seconds Float64,
    -- the cost every report uses: the store's price of the call (NULL: unknown, never 0)
    cost_usd Nullable(Decimal(38, 18)),
    -- 'store': priced by the store; 'client': the client's figure (trust_client_costs, model unpriced)
    cost_source LowCardinality(String),
    -- the cost the client sent (spendscope.cost.usd), kept beside the store's
    client_cost_usd Nullable(Decimal(38, 18)),
    cost_mismatch UInt8,
    -- the name the price was found for (the response's model, else the requested one) and its data
    priced_model LowCardinality(String),
    price_version LowCardinality(String),
    usage_state LowCardinality(String),
    status LowCardinality(String),
    error_type LowCardinality(String),
    user_id String CODEC(ZSTD(1)),
    endpoint LowCardinality(String),
    tenant LowCardinality(String),
    -- spendscope.attr.* attributes with the prefix stripped (job_id, ...)
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    -- spendscope.quantity.* attributes with the prefix stripped
    quantities Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    openai_project LowCardinality(String),
    api_key_redacted LowCardinality(String),
    duration_ns UInt64 CODEC(T64, ZSTD(1)),
    priced UInt8 MATERIALIZED cost_usd IS NOT NULL,
    error UInt8 MATERIALIZED status = 'error',
    usage_unavailable UInt8 MATERIALIZED status = 'ok' AND usage_state = 'unavailable',
    unpriced UInt8 MATERIALIZED status = 'ok' AND usage_state != 'unavailable' AND cost_usd IS NULL,
    inserted_at DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    version UInt64,
    PROJECTION inserted_per_hour (
        SELECT toStartOfHour(time), max(inserted_at), count() GROUP BY toStartOfHour(time)
    )
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(time)
ORDER BY (toStartOfHour(time), tenant, user_id, trace_id, span_id)
SETTINGS ttl_only_drop_parts = 1, deduplicate_merge_projection_mode = 'rebuild';

-- Pricing. The rows of model_prices for the response's model and for the requested one (ASOF: the row
-- in force on the call's UTC day). The response's model is priced first; the requested model when the
-- response's is known to have no price (OpenAI answers `davinci-002` as `davinci:2023-07-21-v2`, which
-- has none). A name with no row at all yet is neither: the call stays unpriced until the rollup builder
-- has the Pricer resolve the name (llm_models_seen) and prices the call again.
-- The cost is exact: per-token prices times counts in Decimal(38, 24) (in Decimal(76, 42) with audio
-- seconds), rounded half to even to 18 decimals as the Pricer's Decimals are; audio seconds parse the double the span carries as its shortest
-- decimal form, as genai-prices does. Calls whose counts cannot be split into priced parts (more cached
-- plus audio input than input) have no price, as genai-prices refuses them.
-- The client's cost is compared with the store's: a double from an older client is within a relative
-- 10^-15 (doubles hold ~16 significant digits), an exact string from a current one is equal, so more is a
-- mismatch. With trust_client_costs, a call without a store price takes the client's cost.
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_usage_mv TO llm_usage AS
WITH
    (SELECT argMax(value, updated_at) = '1' FROM store_settings WHERE name = 'trust_client_costs') AS trust_,
    r.model != '' AS r_found_,
    q.model != '' AND c.request_model_ != '' AS q_found_,
    r_found_ AND r.priced AS use_r_,
    NOT use_r_ AND q_found_ AND q.priced AND (c.response_model_ = '' OR r_found_) AS use_q_,
    c.status = 'ok' AND c.usage_state != 'unavailable' AND (use_r_ OR use_q_)
        AND c.input_tokens + c.cached_input_audio_tokens
            >= c.cached_input_tokens + c.cache_write_input_tokens + c.input_audio_tokens AS priceable_,
    if(use_r_, r.tier_above, q.tier_above) AS tier_above_,
    1 + arrayCount(t -> c.input_tokens > t, tier_above_) AS s_,
    if(
        c.audio_seconds > 0,
        toDecimal256(if(use_r_, r.per_audio_hour, q.per_audio_hour)[s_], 24)
            * toDecimal256(toString(c.audio_seconds), 18) / 3600,
        toDecimal256(
            if(use_r_, r.per_input, q.per_input)[s_] * c.input_tokens
            + if(use_r_, r.per_cached_input, q.per_cached_input)[s_] * c.cached_input_tokens
            + if(use_r_, r.per_cache_write_input, q.per_cache_write_input)[s_] * c.cache_write_input_tokens
            + if(use_r_, r.per_input_audio, q.per_input_audio)[s_] * c.input_audio_tokens
            + if(use_r_, r.per_cached_input_audio, q.per_cached_input_audio)[s_] * c.cached_input_audio_tokens
            + if(use_r_, r.per_output, q.per_output)[s_] * c.output_tokens
            + if(use_r_, r.per_output_audio, q.per_output_audio)[s_] * c.output_audio_tokens
            + if(use_r_, r.per_reasoning, q.per_reasoning)[s_] * c.reasoning_tokens,
            42
        )
    ) + toDecimal256(if(use_r_, r.per_call, q.per_call)[s_], 24) AS exact_,
    if(priceable_, toDecimal128(roundBankers(exact_, 18), 18), NULL) AS store_cost_,
    store_cost_ IS NULL AND trust_ AND c.client_cost_usd IS NOT NULL
        AND c.status = 'ok' AND c.usage_state != 'unavailable' AS use_client_
SELECT
    c.time AS time,
    c.service AS service,
    c.trace_id AS trace_id,
    c.span_id AS span_id,
    c.response_id AS response_id,
    c.operation AS operation,
    c.provider AS provider,
    c.api_type AS api_type,
    c.request_model AS request_model,
    c.response_model AS response_model,
    if(c.response_model != '', c.response_model, c.request_model) AS model,
    c.service_tier AS service_tier,
    c.request_service_tier AS request_service_tier,
    c.batch AS batch,
    c.input_tokens AS input_tokens,
    c.output_tokens AS output_tokens,
    c.cached_input_tokens AS cached_input_tokens,
    c.cache_write_input_tokens AS cache_write_input_tokens,
    c.reasoning_tokens AS reasoning_tokens,
    c.input_audio_tokens AS input_audio_tokens,
    c.cached_input_audio_tokens AS cached_input_audio_tokens,
    c.output_audio_tokens AS output_audio_tokens,
    c.audio_seconds AS audio_seconds,
    if(use_client_, c.client_cost_usd, store_cost_) AS cost_usd,
    multiIf(store_cost_ IS NOT NULL, 'store', use_client_, 'client', '') AS cost_source,
    c.client_cost_usd AS client_cost_usd,
    store_cost_ IS NOT NULL AND c.client_cost_usd IS NOT NULL
        AND abs(toFloat64(c.client_cost_usd) - toFloat64(store_cost_))
            > 1e-15 * abs(toFloat64(store_cost_)) + 1e-18 AS cost_mismatch,
    multiIf(store_cost_ IS NULL, '', use_r_, c.response_model, c.request_model) AS priced_model,
    multiIf(store_cost_ IS NULL, '', use_r_, r.price_version, q.price_version) AS price_version,
    c.usage_state AS usage_state,
    c.status AS status,
    c.error_type AS error_type,
    c.user_id AS user_id,
    c.endpoint AS endpoint,
    c.tenant AS tenant,
    c.attributes AS attributes,
    c.quantities AS quantities,
    c.openai_project AS openai_project,
    c.api_key_redacted AS api_key_redacted,
    c.duration_ns AS duration_ns,
    now64(6) AS inserted_at,
    c.version AS version
FROM (
    SELECT
        *,
        lower(response_model) AS response_model_,
        lower(request_model) AS request_model_,
        if(batch, '', service_tier) AS price_tier_,
        toDate(time) AS day_
    FROM llm_calls_in
    WHERE rejected = ''
) AS c
ASOF LEFT JOIN model_prices_current AS r
    ON c.response_model_ = r.model AND c.price_tier_ = r.service_tier AND c.batch = r.batch
    AND c.day_ >= r.effective_from
ASOF LEFT JOIN model_prices_current AS q
    ON c.request_model_ = q.model AND c.price_tier_ = q.service_tier AND c.batch = q.batch
    AND c.day_ >= q.effective_from;

-- Spans that are not stored as calls, and values calls are stored without, with the reason; one row per
-- span and reason (FINAL), however often it was sent.
CREATE TABLE IF NOT EXISTS llm_usage_rejected (
    time DateTime64(9, 'UTC'),
    service LowCardinality(String),
    trace_id String,
    span_id String,
    tenant LowCardinality(String),
    model LowCardinality(String),
    reason LowCardinality(String),
    -- true: the call is stored without the value (a client cost); false: the span is not a call
    call_stored Bool,
    sent Map(LowCardinality(String), String),
    inserted_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(time)
ORDER BY (toStartOfHour(time), reason, trace_id, span_id)
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_usage_rejected_mv TO llm_usage_rejected AS
SELECT
    time,
    service,
    trace_id,
    span_id,
    tenant,
    if(response_model != '', response_model, request_model) AS model,
    if(rejected != '', rejected, dropped) AS reason,
    rejected = '' AS call_stored,
    sent,
    now64(6) AS inserted_at
FROM llm_calls_in
WHERE rejected != '' OR dropped != '';

-- Names (with tier and batch, as model_prices keys them) that calls carried and model_prices has no row
-- for: the rollup builder has the Pricer resolve them, writes their rows and prices their calls again.
CREATE TABLE IF NOT EXISTS llm_models_seen (
    model String,
    service_tier LowCardinality(String),
    batch Bool,
    seen_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(seen_at)
ORDER BY (model, service_tier, batch);

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_models_seen_mv TO llm_models_seen AS
SELECT name AS model, price_tier AS service_tier, batch, now64(6) AS seen_at
FROM (
    SELECT
        arrayJoin(arrayFilter(x -> x != '', [lower(response_model), lower(request_model)])) AS name,
        if(batch, '', service_tier) AS price_tier,
        batch
    FROM llm_calls_in
    WHERE rejected = '' AND status = 'ok' AND usage_state != 'unavailable'
)
WHERE (name, price_tier, batch) NOT IN (SELECT model, service_tier, batch FROM model_prices_current)
GROUP BY name, price_tier, batch;

-- --- rollups ----------------------------------------------------------------------------------------------
-- Calls summed per bucket, built by the rollup builder from llm_usage FINAL (never fed by inserts):
--   grain 'hour'      per (hour, tenant, endpoint, model, service, operation); user_id is ''
--   grain 'day'       per (day, tenant, endpoint, model, service, operation); user_id is ''
--   grain 'user_day'  per (day, tenant, user_id, endpoint, model, service, operation)
-- A build of buckets writes their rows under a new build_id (in any number of blocks), then one row per
-- bucket in rollup_builds: that publishes it. Readers use a bucket's rows of its latest published build
-- only, so a build that stopped half-way is never read; the builder deletes superseded rows.
-- `covered_upto`: every row of llm_usage written up to then was in the build's reading (it is the time the
-- build read minus a lag longer than any insert takes to commit; spendscope/store/rollups.py).
CREATE TABLE IF NOT EXISTS llm_usage_rollup (
    grain Enum8('hour' = 1, 'day' = 2, 'user_day' = 3),
    bucket DateTime('UTC'),
    build_id UInt64,
    tenant LowCardinality(String),
    user_id String CODEC(ZSTD(1)),
    endpoint LowCardinality(String),
    model LowCardinality(String),
    service LowCardinality(String),
    operation LowCardinality(String),
    calls UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cached_input_tokens UInt64,
    cache_write_input_tokens UInt64,
    reasoning_tokens UInt64,
    input_audio_tokens UInt64,
    output_audio_tokens UInt64,
    audio_seconds Float64,
    -- the priced calls' cost (every call with a cost); the other calls are counted beside it
    cost_usd Decimal(38, 18),
    client_cost_usd Decimal(38, 18),
    priced_calls UInt64,
    unpriced_calls UInt64,
    unpriced_input_tokens UInt64,
    unpriced_output_tokens UInt64,
    usage_unavailable_calls UInt64,
    error_calls UInt64,
    cost_mismatch_calls UInt64,
    quantities Map(LowCardinality(String), Float64)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (grain, bucket, build_id, tenant, user_id, endpoint, model, service, operation)
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS rollup_builds (
    grain Enum8('hour' = 1, 'day' = 2, 'user_day' = 3),
    bucket DateTime('UTC'),
    build_id UInt64,
    covered_upto DateTime64(6, 'UTC'),
    built_at DateTime64(6, 'UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (grain, bucket, build_id)
SETTINGS ttl_only_drop_parts = 1;

-- Exact usage over [since, until) per bucket of `grain` (edge buckets hold their part inside the window):
--   'hour'      per hour, without users (user_id is '')
--   'day'       per day, without users; the whole days from the daily rollup, the whole hours of the
--               other days from the hourly one
--   'user_day'  per day and user
-- Whole buckets that are clean are read from their rollup, everything else (the partial hours at the
-- window's ends, and buckets never built or stale) from llm_usage FINAL, summed to the same grain. A
-- bucket is clean when its latest published build covered every row of llm_usage now in it
-- (max(inserted_at) <= covered_upto, from llm_usage's projection), or when it is older than the raw
-- retention (its raw rows are being dropped). So a duplicate, a late span or a reprice makes its bucket
-- stale until it is built again: the answer never depends on the builder having run, only its speed
-- does. Columns: those of llm_usage_rollup without grain and build_id.
CREATE VIEW IF NOT EXISTS usage AS
WITH
    {grain:String} AS grain_,
    {since:DateTime64(9, 'UTC')} AS since_,
    {until:DateTime64(9, 'UTC')} AS until_,
    grain_ = 'hour' AS hourly_,
    -- the whole hours [hours_from_, hours_until_) and whole buckets [from_, until_) of the window
    toDateTime(toStartOfHour(since_), 'UTC') AS since_hour_,
    if(since_hour_ = since_, since_hour_, since_hour_ + toIntervalHour(1)) AS hours_from_,
    toDateTime(toStartOfHour(until_), 'UTC') AS hours_until_,
    if(hourly_ OR toStartOfDay(hours_from_) = hours_from_, hours_from_, toStartOfDay(hours_from_) + toIntervalDay(1))
        AS from_,
    if(hourly_, hours_until_, toDateTime(toStartOfDay(hours_until_), 'UTC')) AS until_bucket_,
    (
        SELECT toUInt32OrZero(argMax(value, updated_at)) FROM store_settings WHERE name = 'raw_retention_days'
    ) AS raw_days_,
    if(
        raw_days_ = 0, toDateTime(0, 'UTC'), toStartOfDay(now('UTC')) - toIntervalDay(greatest(raw_days_, 1) - 1)
    ) AS horizon_,
    -- the clean whole buckets of `grain`: (bucket, build_id) of their latest published build
    (
        SELECT groupArray((b.bucket, b.latest_build))
        FROM (
            SELECT bucket, max(build_id) AS latest_build, argMax(covered_upto, build_id) AS covered
            FROM rollup_builds
            WHERE grain = grain_ AND bucket >= from_ AND bucket < until_bucket_
            GROUP BY bucket
        ) AS b
        LEFT JOIN (
            SELECT
                toDateTime(if(hourly_, toStartOfHour(time), toStartOfDay(toStartOfHour(time))), 'UTC') AS bucket,
                max(inserted_at) AS last_inserted
            FROM llm_usage
            WHERE toStartOfHour(time) >= from_ AND toStartOfHour(time) < until_bucket_
            GROUP BY bucket
        ) AS i ON i.bucket = b.bucket
        WHERE i.last_inserted <= b.covered OR b.bucket < horizon_
        SETTINGS join_use_nulls = 0
    ) AS clean_,
    -- the window's other whole hours with calls: the clean ones in the hourly rollup, (hour, build_id)
    -- (at grain 'day' only: the others read no hourly rows), and the hours to read from llm_usage
    (
        SELECT (groupArrayIf((hour, latest_build), clean), groupArrayIf(hour, NOT clean))
        FROM (
            SELECT
                w.hour AS hour,
                h.latest_build AS latest_build,
                h.latest_build != 0 AND (w.last_inserted <= h.covered OR w.hour < horizon_) AS clean
            FROM (
                SELECT toDateTime(toStartOfHour(time), 'UTC') AS hour, max(inserted_at) AS last_inserted
                FROM llm_usage
                WHERE toStartOfHour(time) >= hours_from_ AND toStartOfHour(time) < hours_until_
                GROUP BY hour
            ) AS w
            LEFT JOIN (
                SELECT bucket, max(build_id) AS latest_build, argMax(covered_upto, build_id) AS covered
                FROM rollup_builds
                WHERE grain = 'hour' AND grain_ = 'day' AND bucket >= hours_from_ AND bucket < hours_until_
                GROUP BY bucket
            ) AS h ON h.bucket = w.hour
            WHERE NOT has(arrayMap(c -> c.1, clean_), toDateTime(if(hourly_, w.hour, toStartOfDay(w.hour)), 'UTC'))
        )
        SETTINGS join_use_nulls = 0
    ) AS hours_,
    hours_.1 AS clean_hours_,
    hours_.2 AS stale_hours_
SELECT * EXCEPT (grain, build_id)
FROM llm_usage_rollup
WHERE grain = grain_ AND bucket >= from_ AND bucket < until_bucket_
    AND (bucket, build_id) IN (SELECT arrayJoin(clean_))
UNION ALL
SELECT toDateTime(toStartOfDay(hour), 'UTC') AS bucket, * EXCEPT (hour)
FROM (
    SELECT bucket AS hour, * EXCEPT (grain, bucket, build_id)
    FROM llm_usage_rollup
    WHERE grain = 'hour' AND grain_ = 'day' AND bucket >= hours_from_ AND bucket < hours_until_
        AND (bucket, build_id) IN (SELECT arrayJoin(clean_hours_))
)
UNION ALL
SELECT
    toDateTime(if(hourly_, toStartOfHour(time), toStartOfDay(time)), 'UTC') AS bucket,
    tenant,
    if(grain_ = 'user_day', llm_usage.user_id, '') AS user_id,
    endpoint,
    model,
    service,
    operation,
    count() AS calls,
    sum(llm_usage.input_tokens) AS input_tokens,
    sum(llm_usage.output_tokens) AS output_tokens,
    sum(llm_usage.cached_input_tokens) AS cached_input_tokens,
    sum(llm_usage.cache_write_input_tokens) AS cache_write_input_tokens,
    sum(llm_usage.reasoning_tokens) AS reasoning_tokens,
    sum(llm_usage.input_audio_tokens) AS input_audio_tokens,
    sum(llm_usage.output_audio_tokens) AS output_audio_tokens,
    sum(llm_usage.audio_seconds) AS audio_seconds,
    sum(ifNull(llm_usage.cost_usd, toDecimal128(0, 18))) AS cost_usd,
    sum(ifNull(llm_usage.client_cost_usd, toDecimal128(0, 18))) AS client_cost_usd,
    sum(priced) AS priced_calls,
    sum(unpriced) AS unpriced_calls,
    sum(unpriced * llm_usage.input_tokens) AS unpriced_input_tokens,
    sum(unpriced * llm_usage.output_tokens) AS unpriced_output_tokens,
    sum(usage_unavailable) AS usage_unavailable_calls,
    sum(error) AS error_calls,
    sum(cost_mismatch) AS cost_mismatch_calls,
    sumMap(llm_usage.quantities) AS quantities
FROM llm_usage FINAL
WHERE time >= since_ AND time < until_
    AND (time < hours_from_ OR time >= hours_until_ OR toStartOfHour(time) IN (SELECT arrayJoin(stale_hours_)))
GROUP BY bucket, tenant, user_id, endpoint, model, service, operation;
