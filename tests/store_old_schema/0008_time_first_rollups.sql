-- Rollups that a report reads by time range (0004's are sorted by tenant and user, so a time range
-- scanned them whole, and the partial hours at a window's edges scanned llm_usage whole):
--   llm_usage_timeline      every row of llm_usage as the rollups count it (sign * value), sorted by
--                           time: the partial hours at a window's ends are a small range of it.
--   llm_usage_by_dimension  one dimension at a time (dimension = user | endpoint | tenant | model |
--                           service, key = its value) at four grains (hour, day, week from Monday,
--                           month; bucket = the start of the hour, day, week or month, UTC), sorted
--                           by (dimension, grain, bucket): a report by one dimension reads one row
--                           per value and bucket, not one per combination of all five, and a 30-day
--                           window is a few weeks and days, not 30 days.
-- Both are fed from llm_usage like 0004's rollups (sign * value, so a reprice moves them by the
-- difference) and filled here from what the store already holds. Each backfill first empties its
-- table, so a migration interrupted and run again counts every row once; as for any migration, stop
-- ingest while it runs (the collector migrates before it accepts spans).
CREATE TABLE IF NOT EXISTS llm_usage_timeline (
    time DateTime64(9, 'UTC') CODEC(Delta(8), ZSTD(1)),
    tenant LowCardinality(String),
    user_id String CODEC(ZSTD(1)),
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
PARTITION BY toYYYYMM(time)
ORDER BY (time, tenant, user_id, endpoint, model, service)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS llm_usage_by_dimension (
    grain Enum8('hour' = 1, 'day' = 2, 'week' = 3, 'month' = 4),
    bucket DateTime('UTC'),
    dimension LowCardinality(String),
    key String CODEC(ZSTD(1)),
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
PARTITION BY toYYYYMM(bucket)
ORDER BY (dimension, grain, bucket, key)
SETTINGS non_replicated_deduplication_window = 10000;

-- the backfills (before the views: a row is either in llm_usage now or goes through the views later)
TRUNCATE TABLE llm_usage_timeline;

INSERT INTO llm_usage_timeline
SETTINGS insert_deduplicate = 0
SELECT
    time, tenant, user_id, endpoint, model, service,
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
FROM llm_usage;

TRUNCATE TABLE llm_usage_by_dimension;

-- from 0004's rollups, which hold what llm_usage holds, counted as the views count it: hours from the
-- hourly one, days, weeks and months from the daily one (a large store may spill the grouping to disk)
INSERT INTO llm_usage_by_dimension
SETTINGS insert_deduplicate = 0
SELECT
    'hour' AS grain, hour AS bucket, d.1 AS dimension, d.2 AS key,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(cache_write_input_tokens) AS cache_write_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(input_audio_tokens) AS input_audio_tokens,
    sum(output_audio_tokens) AS output_audio_tokens,
    sum(audio_seconds) AS audio_seconds,
    sum(cost_usd) AS cost_usd,
    sum(priced_calls) AS priced_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM llm_usage_hourly
ARRAY JOIN [
    ('user', user_id),
    ('endpoint', toString(endpoint)),
    ('tenant', toString(tenant)),
    ('model', toString(model)),
    ('service', toString(service))
] AS d
GROUP BY grain, bucket, dimension, key
SETTINGS max_bytes_before_external_group_by = 1000000000;

INSERT INTO llm_usage_by_dimension
SETTINGS insert_deduplicate = 0
SELECT
    g.1 AS grain, g.2 AS bucket, d.1 AS dimension, d.2 AS key,
    sum(calls) AS calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(cache_write_input_tokens) AS cache_write_input_tokens,
    sum(reasoning_tokens) AS reasoning_tokens,
    sum(input_audio_tokens) AS input_audio_tokens,
    sum(output_audio_tokens) AS output_audio_tokens,
    sum(audio_seconds) AS audio_seconds,
    sum(cost_usd) AS cost_usd,
    sum(priced_calls) AS priced_calls,
    sum(unpriced_calls) AS unpriced_calls,
    sum(usage_unavailable_calls) AS usage_unavailable_calls,
    sum(error_calls) AS error_calls
FROM llm_usage_daily
ARRAY JOIN [
    ('day', toDateTime(day, 'UTC')),
    ('week', toDateTime(toMonday(day), 'UTC')),
    ('month', toDateTime(toStartOfMonth(day), 'UTC'))
] AS g
ARRAY JOIN [
    ('user', user_id),
    ('endpoint', toString(endpoint)),
    ('tenant', toString(tenant)),
    ('model', toString(model)),
    ('service', toString(service))
] AS d
GROUP BY grain, bucket, dimension, key
SETTINGS max_bytes_before_external_group_by = 1000000000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_usage_timeline_mv TO llm_usage_timeline AS
SELECT
    time, tenant, user_id, endpoint, model, service,
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
FROM llm_usage;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_usage_by_dimension_mv TO llm_usage_by_dimension AS
SELECT
    g.1 AS grain, g.2 AS bucket, d.1 AS dimension, d.2 AS key,
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
ARRAY JOIN [
    ('hour', toDateTime(toStartOfHour(time), 'UTC')),
    ('day', toDateTime(toStartOfDay(time), 'UTC')),
    ('week', toDateTime(toMonday(time), 'UTC')),
    ('month', toDateTime(toStartOfMonth(time), 'UTC'))
] AS g
ARRAY JOIN [
    ('user', user_id),
    ('endpoint', toString(endpoint)),
    ('tenant', toString(tenant)),
    ('model', toString(model)),
    ('service', toString(service))
] AS d
GROUP BY grain, bucket, dimension, key;
