-- Reconciliation: llm_usage of [since, until) at the comparison grain, staged per run (the reconciler
-- inserts this into reconciliation_tracked). Buckets start at the hour (or day) of the call, and the
-- window's first bucket at `since`, as the Usage API's first bucket does. Keys are mapped with the
-- run's key mapping (pair_keys = "project\nredacted"), models and tiers normalised with the rules of
-- spendscope/reconciler/_normalize.py (bound as parameters). Only calls that reached OpenAI
-- (provider openai) count; `ok_calls` are those that got an answer (unavailable usage included).
-- Grouped by a 64-bit hash of the group's columns (much faster than grouping by eleven strings; a
-- collision among a million groups has a probability of about 1e-8).
SELECT
    {run_id:String} AS run_id,
    any(source_) AS source,
    any(bucket_) AS bucket,
    any(project_) AS project_id,
    any(key_) AS api_key_id,
    any(mapping_) AS key_mapping,
    any(normalized_model) AS model,
    any(raw_model_) AS model_raw,
    any(batch_) AS batch,
    any(tier_) AS service_tier,
    any(price_version) AS price_version,
    any(priced_) AS priced,
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
    toInt64(max(call_input_tokens)) AS max_input_tokens
FROM (
    SELECT
        *,
        multiIf(operation = 'embeddings', 'embeddings', operation = 'transcription', 'audio_transcriptions', 'completions') AS source_,
        greatest(
            toDateTime(if({bucket_width:String} = '1d', toStartOfDay(time), toStartOfHour(time)), 'UTC'),
            toDateTime({since:DateTime64(9, 'UTC')}, 'UTC')
        ) AS bucket_,
        concat(openai_project, '\n', api_key_redacted) AS pair,
        transform(pair, {pair_keys:Array(String)}, {pair_projects:Array(String)}, openai_project) AS project_,
        transform(pair, {pair_keys:Array(String)}, {pair_labels:Array(String)},
            if(api_key_redacted = '', 'unknown', concat('unmapped:', api_key_redacted))) AS key_,
        transform(pair, {pair_keys:Array(String)}, {pair_status:Array(String)}, 'unmapped') AS mapping_,
        replaceRegexpOne(
            transform(lower(model), {model_from:Array(String)}, {model_to:Array(String)}, lower(model)),
            {model_suffix:String}, ''
        ) AS normalized_model,
        if(source_ = 'completions', batch, false) AS batch_,
        if(source_ = 'completions',
            transform(replaceRegexpOne(lower(service_tier), {tier_suffix:String}, ''), {tier_from:Array(String)}, {tier_to:Array(String)},
                replaceRegexpOne(lower(service_tier), {tier_suffix:String}, '')),
            'default') AS tier_,
        cost_usd IS NOT NULL AS priced_,
        input_tokens AS call_input_tokens,
        model AS raw_model_,
        cityHash64(source_, bucket_, openai_project, api_key_redacted, model, batch_, tier_, price_version, priced_) AS gk
    FROM llm_usage FINAL
    WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')} AND provider = 'openai'
)
GROUP BY gk
