-- Reconciliation: which projects, keys and models SpendScope saw calls of in a run's window (to tell
-- usage on a key, project or model with no spans at all from more requests than spans).
SELECT DISTINCT project_id, api_key_id, model
FROM reconciliation_tracked
WHERE run_id = {run_id:String}
ORDER BY project_id, api_key_id, model
