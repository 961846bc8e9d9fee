-- Reconciliation, for dashboards and `spendscope reconcile`: the latest complete run of each window
-- that starts in [since, until), newest first.
SELECT
    run_id, window_start, usage_end, costs_start, costs_end, finished_at, tracked_tokens, reported_tokens,
    residual_tokens, tracked_usd, reported_usd, residual_usd, coverage_ratio, token_coverage_ratio,
    passed, cause_usd, ambiguous_keys
FROM reconciliation_runs_latest
WHERE window_start >= {since:DateTime64(9, 'UTC')} AND window_start < {until:DateTime64(9, 'UTC')}
ORDER BY window_start DESC, usage_end DESC
