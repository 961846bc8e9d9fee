-- usage_window(since, until) as in 0006 and 0007 (same columns, buckets of a day or an hour), with the
-- partial hours at the ends read from llm_usage_timeline (0008, sorted by time) instead of llm_usage
-- (sorted by tenant and user, so an hour of it was a scan of the whole month), and each part a plain
-- time range (0006's NOT (...) kept the hourly rollup from skipping anything):
--   h0, h1  the first and the last whole hour   partial hours [since, h0) and [h1, until): timeline
--   d0, d1  the first and the last whole day    hours [h0, d0) and [d1, h1): hourly; days [d0, d1)
-- Where no whole day lies inside the window (d0 > d1), the hours cover it all; where no whole hour does
-- (h0 > h1), the timeline does (least/greatest below). SpendScope's reports do not read this view: they
-- pass the parts as parameters (spendscope/store/windows.py), which ClickHouse plans much faster.
CREATE OR REPLACE VIEW usage_window AS
WITH
    {since:DateTime64(9, 'UTC')} AS since_,
    {until:DateTime64(9, 'UTC')} AS until_,
    toDateTime(toStartOfHour(since_), 'UTC') AS since_hour_,
    if(since_hour_ = since_, since_hour_, since_hour_ + INTERVAL 1 HOUR) AS h0,
    toDateTime(toStartOfHour(until_), 'UTC') AS h1,
    if(toStartOfDay(h0) = h0, toDate(h0), toDate(h0) + 1) AS d0,
    toDate(h1) AS d1
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
WHERE (hour >= h0 AND hour < least(toDateTime(d0, 'UTC'), h1))
    OR (hour >= greatest(toDateTime(d1, 'UTC'), toDateTime(d0, 'UTC')) AND hour < h1)
UNION ALL
SELECT
    toDateTime(toStartOfHour(time), 'UTC') AS bucket, tenant, user_id, endpoint, model, service,
    calls, input_tokens, output_tokens, cached_input_tokens, cache_write_input_tokens,
    reasoning_tokens, input_audio_tokens, output_audio_tokens, audio_seconds, cost_usd,
    priced_calls, unpriced_calls, usage_unavailable_calls, error_calls
FROM llm_usage_timeline
WHERE (time >= since_ AND time < least(toDateTime64(h0, 9, 'UTC'), until_))
    OR (time >= greatest(toDateTime64(h1, 9, 'UTC'), toDateTime64(h0, 9, 'UTC')) AND time < until_);
