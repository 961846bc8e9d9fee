-- Reconciliation: the (recorded OpenAI-Project, recorded redacted key) pairs of the OpenAI calls in
-- [since, until), which the reconciler maps to api_key_ids through the admin key listing.
SELECT openai_project AS project, api_key_redacted AS redacted, count() AS calls
FROM llm_usage FINAL
WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')} AND provider = 'openai'
GROUP BY project, redacted
ORDER BY project, redacted
