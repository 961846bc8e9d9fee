-- Access tokens for the collector's reports API and portal (spendscope/store/tokens.py; `spendscope tokens
-- create | list | revoke`). A token is `sst_<token_id>_<secret>`: the row is found by its id and the
-- sha256 of the whole token compared in constant time; the token itself is never stored. `kind` 'admin'
-- sees everything; 'tenant' sees its tenant only. A revocation writes the row again with `revoked_at`
-- (FINAL keeps the latest). Every collector reading the store sees the same tokens.
CREATE TABLE IF NOT EXISTS access_tokens (
    token_id String,
    kind LowCardinality(String),
    tenant String,
    sha256 String,
    note String,
    created_at DateTime64(3, 'UTC'),
    revoked_at Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY token_id;
