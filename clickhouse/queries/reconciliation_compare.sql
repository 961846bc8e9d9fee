-- Reconciliation: the comparison groups of a run where SpendScope and the Usage API disagree, grouped by
-- (source, bucket, project_id, api_key_id, model, batch, service_tier). The reported side is read from
-- the run's staged pages: models and tiers normalised as in reconciliation_tracked, ambiguous keys
-- merged into their comparison label (merge_from -> merge_to), and audio input counted with its cached
-- part from `audio_change` on (the 2026-07-15 change: input_audio_tokens became uncached only).
-- Transcriptions are compared on requests, and on seconds where SpendScope recorded seconds.
-- Both sides go through one aggregation keyed by a 64-bit hash of the group (see reconciliation_tracked).
SELECT
    any(source_) AS source,
    any(bucket_) AS bucket,
    max(bucket_end_) AS bucket_end,
    any(project_) AS project_id,
    any(key_) AS api_key_id,
    anyIf(mapping_, side = 1) AS key_mapping,
    any(model_) AS model,
    any(batch_) AS batch,
    any(tier_) AS service_tier,
    anyIf(raw_model_, side = 0) AS reported_model,
    anyIf(raw_model_, side = 1) AS tracked_model,
    sumIf(requests_, side = 0) AS requests,
    sumIf(input_, side = 0) AS input_tokens,
    sumIf(cached_, side = 0) AS cached_input_tokens,
    sumIf(output_, side = 0) AS output_tokens,
    sumIf(input_audio_, side = 0) AS input_audio_tokens,
    sumIf(output_audio_, side = 0) AS output_audio_tokens,
    sumIf(seconds_, side = 0) AS audio_seconds,
    sumIf(requests_, side = 1) AS t_requests,
    sum(unavailable_) AS t_unavailable_calls,
    sum(errors_) AS t_error_calls,
    sumIf(input_, side = 1) AS t_input_tokens,
    sumIf(cached_, side = 1) AS t_cached_input_tokens,
    sumIf(output_, side = 1) AS t_output_tokens,
    sumIf(input_audio_, side = 1) AS t_input_audio_tokens,
    sumIf(output_audio_, side = 1) AS t_output_audio_tokens,
    sumIf(seconds_, side = 1) AS t_audio_seconds
FROM (
    SELECT
        0 AS side,
        p.source AS source_,
        toDateTime(b.start_time, 'UTC') AS bucket_,
        toDateTime(b.end_time, 'UTC') AS bucket_end_,
        ifNull(r.project_id, '') AS project_,
        transform(
            ifNull(r.api_key_id, ''), {merge_from:Array(String)}, {merge_to:Array(String)}, ifNull(r.api_key_id, '')
        ) AS key_,
        '' AS mapping_,
        ifNull(r.model, '') AS raw_model_,
        replaceRegexpOne(
            transform(lower(raw_model_), {model_from:Array(String)}, {model_to:Array(String)}, lower(raw_model_)),
            {model_suffix:String}, ''
        ) AS model_,
        ifNull(r.batch, false) AS batch_,
        transform(
            replaceRegexpOne(lower(ifNull(r.service_tier, '')), {tier_suffix:String}, ''),
            {tier_from:Array(String)}, {tier_to:Array(String)},
            replaceRegexpOne(lower(ifNull(r.service_tier, '')), {tier_suffix:String}, '')
        ) AS tier_,
        toInt64(r.num_model_requests) AS requests_,
        toInt64(r.input_tokens) AS input_,
        toInt64(ifNull(r.input_cached_tokens, 0)) AS cached_,
        toInt64(r.output_tokens) AS output_,
        toInt64(
            ifNull(r.input_audio_tokens, 0)
            + if(bucket_ >= toDateTime({audio_change:DateTime64(9, 'UTC')}, 'UTC'), ifNull(r.input_cached_audio_tokens, 0), 0)
        ) AS input_audio_,
        toInt64(ifNull(r.output_audio_tokens, 0)) AS output_audio_,
        ifNull(r.seconds, 0) AS seconds_,
        toInt64(0) AS unavailable_,
        toInt64(0) AS errors_,
        cityHash64(source_, bucket_, project_, key_, model_, batch_, tier_) AS group_
    FROM reconciliation_pages AS p
    ARRAY JOIN p.data AS b
    ARRAY JOIN b.results AS r
    WHERE p.run_id = {run_id:String}
    UNION ALL
    SELECT
        1, source, bucket, toDateTime(0, 'UTC'), project_id, api_key_id, key_mapping, model_raw, model, batch,
        service_tier, ok_calls,
        -- the transcription endpoint reports seconds and requests only: tokens are compared in dollars
        if(source = 'audio_transcriptions', 0, input_tokens),
        if(source = 'audio_transcriptions', 0, cached_input_tokens),
        if(source = 'audio_transcriptions', 0, output_tokens),
        if(source = 'audio_transcriptions', 0, input_audio_tokens),
        if(source = 'audio_transcriptions', 0, output_audio_tokens),
        audio_seconds, unavailable_calls, error_calls,
        cityHash64(source, bucket, project_id, api_key_id, model, batch, service_tier)
    FROM reconciliation_tracked
    WHERE run_id = {run_id:String}
)
GROUP BY group_
HAVING requests != t_requests
    OR input_tokens != t_input_tokens
    OR cached_input_tokens != t_cached_input_tokens
    OR output_tokens != t_output_tokens
    OR input_audio_tokens != t_input_audio_tokens
    OR output_audio_tokens != t_output_audio_tokens
    OR (t_audio_seconds > 0 AND round(audio_seconds, 3) != round(t_audio_seconds, 3))
ORDER BY source, bucket, project_id, api_key_id, model, batch, service_tier
