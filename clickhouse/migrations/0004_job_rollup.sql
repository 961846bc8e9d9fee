-- Per-job rollups: grain 'job_day' of llm_usage_rollup sums the calls per (day, tenant, job_id, endpoint,
-- model, service, operation), `job_id` being the call's `spendscope.attr.job_id` attribute (the portal's
-- billing dimension; '' without one). The per-job tables (the tenants and billing pages, the billing API
-- by attr:job_id) read it through `usage` instead of llm_usage FINAL. The builder builds and publishes its
-- buckets as those of the other grains (spendscope/store/rollups.py), and `usage` reads a bucket only while
-- it is clean, so the same guarantees hold: a span sent again, late, or priced again makes its day stale
-- until it is built again, never counted twice. A store upgraded to this has no job_day bucket yet: until
-- the builder's next run builds them, `usage` answers that grain from llm_usage (exact, slower).
ALTER TABLE llm_usage_rollup MODIFY COLUMN grain Enum8('hour' = 1, 'day' = 2, 'user_day' = 3, 'job_day' = 4);

ALTER TABLE rollup_builds MODIFY COLUMN grain Enum8('hour' = 1, 'day' = 2, 'user_day' = 3, 'job_day' = 4);

-- '' in the rows of the other grains (and in the rows built before this column)
ALTER TABLE llm_usage_rollup ADD COLUMN IF NOT EXISTS job_id String DEFAULT '' CODEC(ZSTD(1));

-- `usage` as in 0001_baseline.sql, with the grain 'job_day' (per day, tenant and job: the days the window
-- holds whole from its rollup, its partial days from llm_usage, as at 'user_day') and the column job_id
-- last ('' at the other grains).
CREATE OR REPLACE VIEW usage AS
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
    sumMap(llm_usage.quantities) AS quantities,
    if(grain_ = 'job_day', llm_usage.attributes['job_id'], '') AS job_id
FROM llm_usage FINAL
WHERE time >= since_ AND time < until_
    AND (time < hours_from_ OR time >= hours_until_ OR toStartOfHour(time) IN (SELECT arrayJoin(stale_hours_)))
GROUP BY bucket, tenant, user_id, endpoint, model, service, operation, job_id;
