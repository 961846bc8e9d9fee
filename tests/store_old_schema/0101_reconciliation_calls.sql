-- Reconciliation: the number of calls each cause concerns (spendscope reconcile's `calls`), per diff
-- row and, per run, by cause. Rows written before this migration read 0 and an empty map.
ALTER TABLE reconciliation_diffs ADD COLUMN IF NOT EXISTS calls Int64 DEFAULT 0 AFTER tokens;

ALTER TABLE reconciliation_runs
    ADD COLUMN IF NOT EXISTS cause_calls Map(LowCardinality(String), Int64) AFTER cause_usd;

-- A view's columns are fixed when it is created: again, with cause_calls.
CREATE OR REPLACE VIEW reconciliation_runs_latest AS
SELECT *
FROM reconciliation_runs
WHERE status = 'complete'
ORDER BY window_start, window_end, started_at DESC
LIMIT 1 BY window_start, window_end;
