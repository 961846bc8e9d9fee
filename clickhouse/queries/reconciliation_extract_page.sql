-- Reconciliation: one raw Usage API page parsed into reconciliation_pages' columns (the reconciler
-- inserts this). A body that is not a page parses to an empty `object`, which the reconciler refuses.
SELECT
    run_id,
    source,
    page_no,
    p.object AS object,
    p.has_more AS has_more,
    p.next_page AS next_page,
    p.data AS data
FROM (
    SELECT
        run_id,
        source,
        page_no,
        JSONExtract(
            body,
            'Tuple(object String, has_more Bool, next_page Nullable(String), data Array(Tuple(object String, start_time Int64, end_time Int64, results Array(Tuple(object String, project_id Nullable(String), api_key_id Nullable(String), model Nullable(String), batch Nullable(Bool), service_tier Nullable(String), num_model_requests UInt64, input_tokens UInt64, output_tokens UInt64, input_cached_tokens Nullable(UInt64), input_cache_write_tokens Nullable(UInt64), input_audio_tokens Nullable(UInt64), input_cached_audio_tokens Nullable(UInt64), output_audio_tokens Nullable(UInt64), seconds Nullable(Float64))))))'
        ) AS p
    FROM reconciliation_raw_pages
    WHERE run_id = {run_id:String} AND source = {source:String} AND page_no = {page_no:UInt32}
)
