-- Reconciliation: the comparison groups of a run where SpendScope and the Usage API disagree, grouped by
-- (source, bucket, project_id, api_key_id, model, batch, service_tier). The reported side is read from
-- the run's staged pages: models and tiers normalised as in reconciliation_tracked, ambiguous keys
-- merged into their comparison label (merge_from -> merge_to), and audio input counted with its cached
-- part from `audio_change` on (the 2026-07-15 change: input_audio_tokens became uncached only).
-- Transcriptions are compared on requests, and on seconds where SpendScope recorded seconds.
WITH
    reported AS (
        SELECT
            source, bucket, project_id, api_key_id, model, batch, service_tier,
            max(bucket_end_) AS bucket_end,
            any(model_raw) AS reported_model,
            toInt64(sum(requests_)) AS requests,
            toInt64(sum(input_)) AS input_tokens,
            toInt64(sum(cached_)) AS cached_input_tokens,
            toInt64(sum(output_)) AS output_tokens,
            toInt64(sum(input_audio_)) AS input_audio_tokens,
            toInt64(sum(output_audio_)) AS output_audio_tokens,
            sum(seconds_) AS audio_seconds
        FROM (
            SELECT
                p.source AS source,
                toDateTime(b.start_time, 'UTC') AS bucket,
                toDateTime(b.end_time, 'UTC') AS bucket_end_,
                ifNull(r.project_id, '') AS project_id,
                transform(
                    ifNull(r.api_key_id, ''), {merge_from:Array(String)}, {merge_to:Array(String)},
                    ifNull(r.api_key_id, '')
                ) AS api_key_id,
                ifNull(r.model, '') AS model_raw,
                replaceRegexpOne(
                    transform(lower(model_raw), {model_from:Array(String)}, {model_to:Array(String)}, lower(model_raw)),
                    {model_suffix:String}, ''
                ) AS model,
                ifNull(r.batch, false) AS batch,
                transform(
                    replaceRegexpOne(lower(ifNull(r.service_tier, '')), {tier_suffix:String}, ''),
                    {tier_from:Array(String)}, {tier_to:Array(String)},
                    replaceRegexpOne(lower(ifNull(r.service_tier, '')), {tier_suffix:String}, '')
                ) AS service_tier,
                r.num_model_requests AS requests_,
                r.input_tokens AS input_,
                ifNull(r.input_cached_tokens, 0) AS cached_,
                r.output_tokens AS output_,
                ifNull(r.input_audio_tokens, 0)
                    + if(bucket >= toDateTime({audio_change:DateTime64(9, 'UTC')}, 'UTC'), ifNull(r.input_cached_audio_tokens, 0), 0)
                    AS input_audio_,
                ifNull(r.output_audio_tokens, 0) AS output_audio_,
                ifNull(r.seconds, 0) AS seconds_
            FROM reconciliation_pages AS p
            ARRAY JOIN p.data AS b
            ARRAY JOIN b.results AS r
            WHERE p.run_id = {run_id:String}
        )
        GROUP BY source, bucket, project_id, api_key_id, model, batch, service_tier
    ),
    tracked AS (
        SELECT
            source, bucket, project_id, api_key_id, model, batch, service_tier,
            any(model_raw) AS tracked_model,
            any(key_mapping) AS key_mapping,
            sum(ok_calls) AS t_requests,
            sum(unavailable_calls) AS t_unavailable_calls,
            sum(error_calls) AS t_error_calls,
            sum(input_tokens) AS t_input_tokens,
            sum(cached_input_tokens) AS t_cached_input_tokens,
            sum(output_tokens) AS t_output_tokens,
            sum(input_audio_tokens) AS t_input_audio_tokens,
            sum(output_audio_tokens) AS t_output_audio_tokens,
            sum(audio_seconds) AS t_audio_seconds,
            sum(cost_usd) AS t_cost_usd
        FROM reconciliation_tracked
        WHERE run_id = {run_id:String}
        GROUP BY source, bucket, project_id, api_key_id, model, batch, service_tier
    )
SELECT
    source, bucket, bucket_end, project_id, api_key_id, key_mapping, model, batch, service_tier,
    reported_model, tracked_model,
    requests, input_tokens, cached_input_tokens, output_tokens, input_audio_tokens, output_audio_tokens,
    audio_seconds,
    t_requests, t_unavailable_calls, t_error_calls, t_input_tokens, t_cached_input_tokens, t_output_tokens,
    t_input_audio_tokens, t_output_audio_tokens, t_audio_seconds, t_cost_usd
FROM reported
FULL OUTER JOIN tracked USING (source, bucket, project_id, api_key_id, model, batch, service_tier)
WHERE requests != t_requests
    OR input_tokens != t_input_tokens
    OR cached_input_tokens != t_cached_input_tokens
    OR output_tokens != t_output_tokens
    OR input_audio_tokens != t_input_audio_tokens
    OR output_audio_tokens != t_output_audio_tokens
    OR (t_audio_seconds > 0 AND round(audio_seconds, 3) != round(t_audio_seconds, 3))
ORDER BY source, bucket, project_id, api_key_id, model, batch, service_tier
