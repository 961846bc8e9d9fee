-- Reconciliation: every staged Usage API page of a run as ClickHouse parsed it (the reconciler checks
-- that each page it fetched is staged with the buckets it read).
SELECT source, page_no, object, has_more, next_page, length(data) AS buckets
FROM reconciliation_pages
WHERE run_id = {run_id:String}
ORDER BY source, page_no
