-- Insert deduplication on the landing table, without touching the exporter's CREATE statement.
--
-- A MergeTree table remembers the hashes of its last N inserted blocks only when
-- non_replicated_deduplication_window > 0 (replicated tables always do). `SpanSink.insert_spans`
-- inserts every block with insert_deduplication_token = the collector's block id, so a replayed
-- block (retry after a timeout, spool replay after a crash) is dropped here, and, with
-- deduplicate_blocks_in_dependent_materialized_views = 1, in every materialized view below it
-- (llm_usage and the rollups carry the same window). 10000 blocks is hours of collector traffic.
ALTER TABLE otel_traces MODIFY SETTING non_replicated_deduplication_window = 10000;
