-- Reconciliation: the (recorded OpenAI-Project, recorded redacted key) pairs of the OpenAI calls in
-- [since, until), which the reconciler maps to api_key_ids through the admin key listing, with what
-- SpendScope tracked on each: calls that got an answer (`requests`), input + output tokens (of the
-- endpoints the Usage API counts in tokens: not transcriptions) and the stored cost of the calls in
-- the closed cost days [costs_start, costs_end).
SELECT
    openai_project AS project,
    api_key_redacted AS redacted,
    count() AS calls,
    countIf(status = 'ok') AS requests,
    toInt64(sumIf(input_tokens + output_tokens, operation != 'transcription')) AS tokens,
    sumIf(
        ifNull(cost_usd, toDecimal128(0, 18)),
        time >= {costs_start:DateTime64(9, 'UTC')} AND time < {costs_end:DateTime64(9, 'UTC')}
    ) AS cost_usd
FROM llm_usage FINAL
WHERE time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')} AND provider = 'openai'
GROUP BY project, redacted
ORDER BY project, redacted
