-- Which migrations (clickhouse/migrations/NNNN_name.sql) a database has had, written by
-- `spendscope migrate` (and the collector on start) after each migration's statements ran.
-- `checksum` is the sha256 of the file: a file changed after it was applied is refused.
-- Every migration statement is idempotent (IF NOT EXISTS, MODIFY SETTING), so a run that stopped
-- half-way is simply run again; two concurrent runs leave one row per version.
CREATE TABLE IF NOT EXISTS spendscope_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
