-- Reconciliation, for dashboards: the residual (OpenAI reported - SpendScope tracked) of [since, until)
-- by UTC day and cause, from the latest complete reconciliation of each bucket. Dollars only where the
-- Costs API was compared (closed days); tokens and calls of price causes are the ones affected.
SELECT
    toDate(bucket) AS day, cause, sum(tokens) AS residual_tokens, sum(usd) AS residual_usd, sum(calls) AS calls
FROM reconciliation_diffs
WHERE kind = 'cause' AND bucket >= {since:DateTime64(9, 'UTC')} AND bucket < {until:DateTime64(9, 'UTC')}
GROUP BY day, cause
ORDER BY day, cause
