-- Reconciliation: llm_usage of [since, until) at the comparison grain, staged per run (the reconciler
-- inserts this into reconciliation_tracked). Buckets start at the hour (or day) of the call, and the
-- window's first bucket at `since`, as the Usage API's first bucket does. Keys are mapped with the
-- run's key mapping (pair_keys = "project\nredacted"), models and tiers normalised with the rules of
-- spendscope/reconciler/_normalize.py (bound as parameters). Only calls that reached OpenAI
-- (provider openai) count; `ok_calls` are those that got an answer (unavailable usage included).
SELECT
    {run_id:String} AS run_id,
    source,
    bucket,
    project_id,
    api_key_id,
    key_mapping,
    normalized_model AS model,
    model_raw,
    batch_ AS batch,
    tier AS service_tier,
    price_version,
    priced,
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
    toInt64(max(input_tokens)) AS max_input_tokens
FROM (
    SELECT
        *,
        multiIf(
            operation = 'embeddings', 'embeddings', operation = 'transcription', 'audio_transcriptions', 'completions'
        ) AS source,
        greatest(
            toDateTime(if({bucket_width:String} = '1d', toStartOfDay(time), toStartOfHour(time)), 'UTC'),
            toDateTime({since:DateTime64(9, 'UTC')}, 'UTC')
        ) AS bucket,
        concat(openai_project, '\n', api_key_redacted) AS pair,
        transform(pair, {pair_keys:Array(String)}, {pair_projects:Array(String)}, openai_project) AS project_id,
        transform(
            pair, {pair_keys:Array(String)}, {pair_labels:Array(String)},
            if(api_key_redacted = '', 'unknown', concat('unmapped:', api_key_redacted))
        ) AS api_key_id,
        transform(pair, {pair_keys:Array(String)}, {pair_status:Array(String)}, 'unmapped') AS key_mapping,
        model AS model_raw,
        replaceRegexpOne(
            transform(lower(model), {model_from:Array(String)}, {model_to:Array(String)}, lower(model)),
            {model_suffix:String}, ''
        ) AS normalized_model,
        if(source = 'completions', batch, false) AS batch_,
        if(
            source = 'completions',
            transform(
                replaceRegexpOne(lower(service_tier), {tier_suffix:String}, ''),
                {tier_from:Array(String)}, {tier_to:Array(String)},
                replaceRegexpOne(lower(service_tier), {tier_suffix:String}, '')
            ),
            'default'
        ) AS tier,
        cost_usd IS NOT NULL AS priced
    FROM llm_usage FINAL
    WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')} AND provider = 'openai'
)
GROUP BY source, bucket, project_id, api_key_id, key_mapping, model, model_raw, batch, service_tier,
    price_version, priced
