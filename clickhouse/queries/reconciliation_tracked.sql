-- Reconciliation: llm_usage of [since, until) at the comparison grain, staged per run (the reconciler
-- inserts this into reconciliation_tracked). Buckets start at the hour (or day) of the call, and the
-- window's first bucket at `since`, as the Usage API's first bucket does. Keys are mapped with the
-- run's key mapping (pair_keys = "project\nredacted"), models and tiers normalised with the rules of
-- spendscope/reconciler/_normalize.py (bound as parameters). Only calls that reached OpenAI
-- (provider openai) count; `ok_calls` are those that got an answer (unavailable usage included).
-- Grouped on llm_usage's own columns first, then mapped and normalised (once per group, not per call).
SELECT
    {run_id:String} AS run_id,
    source_ AS source,
    bucket_ AS bucket,
    transform(
        concat(project_raw, '\n', redacted_raw) AS pair, {pair_keys:Array(String)}, {pair_projects:Array(String)},
        project_raw
    ) AS project_id,
    transform(
        pair, {pair_keys:Array(String)}, {pair_labels:Array(String)},
        if(redacted_raw = '', 'unknown', concat('unmapped:', redacted_raw))
    ) AS api_key_id,
    transform(pair, {pair_keys:Array(String)}, {pair_status:Array(String)}, 'unmapped') AS key_mapping,
    replaceRegexpOne(
        transform(lower(model_raw_), {model_from:Array(String)}, {model_to:Array(String)}, lower(model_raw_)),
        {model_suffix:String}, ''
    ) AS model,
    model_raw_ AS model_raw,
    if(source_ = 'completions', batch_raw, false) AS batch,
    if(
        source_ = 'completions',
        transform(
            replaceRegexpOne(lower(tier_raw), {tier_suffix:String}, ''), {tier_from:Array(String)}, {tier_to:Array(String)},
            replaceRegexpOne(lower(tier_raw), {tier_suffix:String}, '')
        ),
        'default'
    ) AS service_tier,
    version_ AS price_version,
    priced_ AS priced,
    ok_calls, unavailable_calls, error_calls, input_tokens, cached_input_tokens, cache_write_input_tokens,
    output_tokens, input_audio_tokens, output_audio_tokens, audio_seconds, cost_usd, max_input_tokens
FROM (
    SELECT
        multiIf(operation = 'embeddings', 'embeddings', operation = 'transcription', 'audio_transcriptions', 'completions') AS source_,
        greatest(
            toDateTime(if({bucket_width:String} = '1d', toStartOfDay(time), toStartOfHour(time)), 'UTC'),
            toDateTime({since:DateTime64(9, 'UTC')}, 'UTC')
        ) AS bucket_,
        openai_project AS project_raw,
        api_key_redacted AS redacted_raw,
        model AS model_raw_,
        batch AS batch_raw,
        service_tier AS tier_raw,
        price_version AS version_,
        llm_usage.cost_usd IS NOT NULL AS priced_,
        countIf(status = 'ok') AS ok_calls,
        countIf(status = 'ok' AND usage_state = 'unavailable') AS unavailable_calls,
        countIf(status = 'error') AS error_calls,
        toInt64(sum(input_tokens)) AS input_tokens,
        toInt64(sum(cached_input_tokens)) AS cached_input_tokens,
        toInt64(sum(cache_write_input_tokens)) AS cache_write_input_tokens,
        toInt64(sum(output_tokens)) AS output_tokens,
        toInt64(sum(input_audio_tokens)) AS input_audio_tokens,
        toInt64(sum(output_audio_tokens)) AS output_audio_tokens,
        sum(audio_seconds) AS audio_seconds,
        sum(ifNull(cost_usd, toDecimal128(0, 18))) AS cost_usd,
        toInt64(max(llm_usage.input_tokens)) AS max_input_tokens
    FROM llm_usage FINAL
    WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')} AND provider = 'openai'
    GROUP BY source_, bucket_, project_raw, redacted_raw, model_raw_, batch_raw, tier_raw, version_, priced_
)
