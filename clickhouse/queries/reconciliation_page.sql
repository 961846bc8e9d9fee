-- Reconciliation: the envelope of every staged Usage API page of a run, as ClickHouse parsed it (the
-- reconciler checks it against the has_more/next_page it followed).
SELECT source, page_no, object, has_more, next_page, length(data) AS buckets
FROM reconciliation_pages
WHERE run_id = {run_id:String}
ORDER BY source, page_no
