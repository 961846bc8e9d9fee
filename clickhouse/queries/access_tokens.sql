-- Every access token (latest state of each), the oldest first (spendscope/store/tokens.py).
SELECT token_id, kind, tenant, sha256, note, created_at, revoked_at
FROM access_tokens FINAL
ORDER BY created_at, token_id
