-- Reconciliation: SpendScope's calls of whole UTC days [costs_start, costs_end) by project, model, tier,
-- batch and the price data that priced them: the dollars compared with the Costs API, split into line
-- items, and the calls whose price is missing or stale.
SELECT
    toDate(bucket) AS day,
    project_id,
    model,
    model_raw,
    batch,
    service_tier,
    price_version,
    priced,
    sum(ok_calls) AS ok_calls,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(cache_write_input_tokens) AS cache_write_input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(input_audio_tokens) AS input_audio_tokens,
    sum(output_audio_tokens) AS output_audio_tokens,
    sum(audio_seconds) AS audio_seconds,
    sum(cost_usd) AS cost_usd,
    max(max_input_tokens) AS max_input_tokens
FROM reconciliation_tracked
WHERE run_id = {run_id:String}
    AND bucket >= {costs_start:DateTime64(9, 'UTC')} AND bucket < {costs_end:DateTime64(9, 'UTC')}
GROUP BY day, project_id, model, model_raw, batch, service_tier, price_version, priced
ORDER BY day, project_id, model, model_raw, batch, service_tier, price_version, priced
