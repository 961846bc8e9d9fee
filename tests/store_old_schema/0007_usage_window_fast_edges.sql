-- Faster reads at scale.
-- * The partial hours at the edges of usage_window are read from llm_usage as the rollups read it:
--   every row weighted by its sign, without FINAL (FINAL cannot prune by time on a table sorted by
--   tenant and user, so it merged whole months). Reprices net out exactly as in the rollups, and a
--   span stored twice in two blocks counts as it does in the rollups: the edges and the rollups
--   always agree.
-- * A minmax index on llm_usage.time lets those edge reads skip everything outside the window.
-- * Bloom filters on user_id let per-user questions ("what did user X cost this month") skip the
--   granules of other users in the rollups, whose sort key starts with the tenant.
ALTER TABLE llm_usage ADD INDEX IF NOT EXISTS idx_time time TYPE minmax GRANULARITY 1;
ALTER TABLE llm_usage ADD INDEX IF NOT EXISTS idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE llm_usage_hourly ADD INDEX IF NOT EXISTS idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE llm_usage_daily ADD INDEX IF NOT EXISTS idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 1;

CREATE OR REPLACE VIEW usage_window AS
WITH
    {since:DateTime64(9, 'UTC')} AS since_,
    {until:DateTime64(9, 'UTC')} AS until_,
    toStartOfHour(since_) AS since_hour_,
    toDateTime(if(since_hour_ = since_, since_hour_, since_hour_ + INTERVAL 1 HOUR), 'UTC') AS h0,
    toDateTime(toStartOfHour(until_), 'UTC') AS h1,
    if(toStartOfDay(since_) = since_, toDate(since_), toDate(since_) + 1) AS d0,
    toDate(until_) AS d1
SELECT
    toDateTime(day, 'UTC') AS bucket, tenant, user_id, endpoint, model, service,
    calls, input_tokens, output_tokens, cached_input_tokens, cache_write_input_tokens,
    reasoning_tokens, input_audio_tokens, output_audio_tokens, audio_seconds, cost_usd,
    priced_calls, unpriced_calls, usage_unavailable_calls, error_calls
FROM llm_usage_daily
WHERE day >= d0 AND day < d1
UNION ALL
SELECT
    hour AS bucket, tenant, user_id, endpoint, model, service,
    calls, input_tokens, output_tokens, cached_input_tokens, cache_write_input_tokens,
    reasoning_tokens, input_audio_tokens, output_audio_tokens, audio_seconds, cost_usd,
    priced_calls, unpriced_calls, usage_unavailable_calls, error_calls
FROM llm_usage_hourly
WHERE hour >= h0 AND hour < h1 AND NOT (hour >= toDateTime(d0, 'UTC') AND hour < toDateTime(d1, 'UTC'))
UNION ALL
SELECT
    toDateTime(toStartOfHour(time), 'UTC') AS bucket, tenant, user_id, endpoint, model, service,
    toInt64(sign) AS calls,
    sign * toInt64(input_tokens) AS input_tokens,
    sign * toInt64(output_tokens) AS output_tokens,
    sign * toInt64(cached_input_tokens) AS cached_input_tokens,
    sign * toInt64(cache_write_input_tokens) AS cache_write_input_tokens,
    sign * toInt64(reasoning_tokens) AS reasoning_tokens,
    sign * toInt64(input_audio_tokens) AS input_audio_tokens,
    sign * toInt64(output_audio_tokens) AS output_audio_tokens,
    sign * audio_seconds AS audio_seconds,
    toDecimal128(sign * ifNull(llm_usage.cost_usd, toDecimal128(0, 18)), 18) AS cost_usd,
    sign * toInt64(llm_usage.cost_usd IS NOT NULL) AS priced_calls,
    sign * toInt64(status = 'ok' AND usage_state != 'unavailable' AND llm_usage.cost_usd IS NULL) AS unpriced_calls,
    sign * toInt64(status = 'ok' AND usage_state = 'unavailable') AS usage_unavailable_calls,
    sign * toInt64(status = 'error') AS error_calls
FROM llm_usage
WHERE time >= since_ AND time < until_ AND NOT (time >= h0 AND time < h1);
