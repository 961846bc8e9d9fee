-- usage_window(since, until): every call in [since, until), read from the cheapest exact source:
-- whole UTC days from llm_usage_daily, the remaining whole hours from llm_usage_hourly, and only the
-- partial hours at either end from llm_usage itself. One row per rollup row (or per call at the
-- edges), with the rollups' columns and `bucket` = the start of its day or hour. Named queries filter and
-- aggregate it; filters on tenant, user_id, endpoint, model and service are pushed down.
CREATE VIEW IF NOT EXISTS usage_window AS
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
    toInt64(1) AS calls,
    toInt64(input_tokens) AS input_tokens,
    toInt64(output_tokens) AS output_tokens,
    toInt64(cached_input_tokens) AS cached_input_tokens,
    toInt64(cache_write_input_tokens) AS cache_write_input_tokens,
    toInt64(reasoning_tokens) AS reasoning_tokens,
    toInt64(input_audio_tokens) AS input_audio_tokens,
    toInt64(output_audio_tokens) AS output_audio_tokens,
    audio_seconds,
    ifNull(cost_usd, toDecimal128(0, 18)) AS cost_usd,
    toInt64(llm_usage.cost_usd IS NOT NULL) AS priced_calls,
    toInt64(status = 'ok' AND usage_state != 'unavailable' AND llm_usage.cost_usd IS NULL) AS unpriced_calls,
    toInt64(status = 'ok' AND usage_state = 'unavailable') AS usage_unavailable_calls,
    toInt64(status = 'error') AS error_calls
FROM llm_usage FINAL
WHERE time >= since_ AND time < until_ AND NOT (time >= h0 AND time < h1);
