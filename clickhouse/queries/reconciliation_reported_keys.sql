-- Reconciliation: what the Usage API reported per project and api key over a run's window: requests,
-- and input + output tokens (the transcription endpoint reports seconds: no tokens).
SELECT
    ifNull(r.project_id, '') AS project_id,
    ifNull(r.api_key_id, '') AS api_key_id,
    toInt64(sum(r.num_model_requests)) AS requests,
    toInt64(sum(r.input_tokens + r.output_tokens)) AS tokens
FROM reconciliation_pages AS p
ARRAY JOIN p.data AS b
ARRAY JOIN b.results AS r
WHERE p.run_id = {run_id:String}
GROUP BY project_id, api_key_id
ORDER BY project_id, api_key_id
