-- Reconciliation: every bucket the Usage API returned in a run, with its number of results.
SELECT source, b.start_time AS start_time, b.end_time AS end_time, length(b.results) AS results
FROM reconciliation_pages AS p
ARRAY JOIN p.data AS b
WHERE p.run_id = {run_id:String}
ORDER BY source, start_time, end_time
