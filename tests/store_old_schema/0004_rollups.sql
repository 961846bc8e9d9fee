-- Hourly and daily rollups of llm_usage by (tenant, user, endpoint, model, service), maintained by
-- materialized views on llm_usage, so dashboards and per-user reports read thousands of rows, not
-- millions. SummingMergeTree adds rows with the same key up on merge; always read them with sum().
--
-- Every value is summed as sign * value (see 0003): a reprice's cancelling row takes the old values
-- out and its new row puts the new ones in, so the rollups stay equal to llm_usage.
-- Kinds of calls (each call is exactly one of the last four, as in the demo's tables):
--   priced_calls             cost_usd is known (it is included in cost_usd)
--   error_calls              the call failed (status = 'error')
--   usage_unavailable_calls  answered, but no usage arrived (a stream abandoned early)
--   unpriced_calls           usage known, but no price for the model: its cost is unknown, not 0
-- (`llm_usage.cost_usd` is qualified where an output column has the same name: in ClickHouse an
-- alias wins over a column of the same name.)
CREATE TABLE IF NOT EXISTS llm_usage_hourly (
    hour DateTime('UTC'),
    tenant LowCardinality(String),
    user_id String,
    endpoint LowCardinality(String),
    model LowCardinality(String),
    service LowCardinality(String),
    calls Int64,
    input_tokens Int64,
    output_tokens Int64,
    cached_input_tokens Int64,
    cache_write_input_tokens Int64,
    reasoning_tokens Int64,
    input_audio_tokens Int64,
    output_audio_tokens Int64,
    audio_seconds Float64,
    cost_usd Decimal(38, 18),
    priced_calls Int64,
    unpriced_calls Int64,
    usage_unavailable_calls Int64,
    error_calls Int64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, user_id, endpoint, model, service, hour)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS llm_usage_daily (
    day Date,
    tenant LowCardinality(String),
    user_id String,
    endpoint LowCardinality(String),
    model LowCardinality(String),
    service LowCardinality(String),
    calls Int64,
    input_tokens Int64,
    output_tokens Int64,
    cached_input_tokens Int64,
    cache_write_input_tokens Int64,
    reasoning_tokens Int64,
    input_audio_tokens Int64,
    output_audio_tokens Int64,
    audio_seconds Float64,
    cost_usd Decimal(38, 18),
    priced_calls Int64,
    unpriced_calls Int64,
    usage_unavailable_calls Int64,
    error_calls Int64
) ENGINE = SummingMergeTree
PARTITION BY toYear(day)
ORDER BY (tenant, user_id, endpoint, model, service, day)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_usage_hourly_mv TO llm_usage_hourly AS
SELECT
    toStartOfHour(time) AS hour,
    tenant,
    user_id,
    endpoint,
    model,
    service,
    sum(sign) AS calls,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cached_input_tokens) AS cached_input_tokens,
    sum(sign * cache_write_input_tokens) AS cache_write_input_tokens,
    sum(sign * reasoning_tokens) AS reasoning_tokens,
    sum(sign * input_audio_tokens) AS input_audio_tokens,
    sum(sign * output_audio_tokens) AS output_audio_tokens,
    sum(sign * audio_seconds) AS audio_seconds,
    sum(sign * ifNull(cost_usd, 0)) AS cost_usd,
    sum(sign * (llm_usage.cost_usd IS NOT NULL)) AS priced_calls,
    sum(sign * (status = 'ok' AND usage_state != 'unavailable' AND llm_usage.cost_usd IS NULL)) AS unpriced_calls,
    sum(sign * (status = 'ok' AND usage_state = 'unavailable')) AS usage_unavailable_calls,
    sum(sign * (status = 'error')) AS error_calls
FROM llm_usage
GROUP BY hour, tenant, user_id, endpoint, model, service;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_usage_daily_mv TO llm_usage_daily AS
SELECT
    toDate(time) AS day,
    tenant,
    user_id,
    endpoint,
    model,
    service,
    sum(sign) AS calls,
    sum(sign * input_tokens) AS input_tokens,
    sum(sign * output_tokens) AS output_tokens,
    sum(sign * cached_input_tokens) AS cached_input_tokens,
    sum(sign * cache_write_input_tokens) AS cache_write_input_tokens,
    sum(sign * reasoning_tokens) AS reasoning_tokens,
    sum(sign * input_audio_tokens) AS input_audio_tokens,
    sum(sign * output_audio_tokens) AS output_audio_tokens,
    sum(sign * audio_seconds) AS audio_seconds,
    sum(sign * ifNull(cost_usd, 0)) AS cost_usd,
    sum(sign * (llm_usage.cost_usd IS NOT NULL)) AS priced_calls,
    sum(sign * (status = 'ok' AND usage_state != 'unavailable' AND llm_usage.cost_usd IS NULL)) AS unpriced_calls,
    sum(sign * (status = 'ok' AND usage_state = 'unavailable')) AS usage_unavailable_calls,
    sum(sign * (status = 'error')) AS error_calls
FROM llm_usage
GROUP BY day, tenant, user_id, endpoint, model, service;
