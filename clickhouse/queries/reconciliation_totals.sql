-- Reconciliation: what SpendScope tracked and what the Usage API reported over a run's usage window,
-- per source (transcription tokens aside: that endpoint reports seconds).
SELECT
    source,
    reported_requests, reported_input_tokens, reported_output_tokens, reported_buckets, empty_buckets,
    tracked_requests, tracked_input_tokens, tracked_output_tokens, tracked_unavailable_calls,
    tracked_error_calls
FROM (
    SELECT
        p.source AS source,
        toInt64(sum(arraySum(x -> x.num_model_requests, b.results))) AS reported_requests,
        toInt64(sum(arraySum(x -> x.input_tokens, b.results))) AS reported_input_tokens,
        toInt64(sum(arraySum(x -> x.output_tokens, b.results))) AS reported_output_tokens,
        toInt64(count()) AS reported_buckets,
        toInt64(countIf(empty(b.results))) AS empty_buckets
    FROM reconciliation_pages AS p
    ARRAY JOIN p.data AS b
    WHERE p.run_id = {run_id:String}
    GROUP BY source
) AS r
FULL OUTER JOIN (
    SELECT
        source,
        sum(ok_calls) AS tracked_requests,
        sumIf(input_tokens, source != 'audio_transcriptions') AS tracked_input_tokens,
        sumIf(output_tokens, source != 'audio_transcriptions') AS tracked_output_tokens,
        sum(unavailable_calls) AS tracked_unavailable_calls,
        sum(error_calls) AS tracked_error_calls
    FROM reconciliation_tracked
    WHERE run_id = {run_id:String}
    GROUP BY source
) AS t USING (source)
ORDER BY source
