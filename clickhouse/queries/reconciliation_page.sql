-- Reconciliation: the envelope of one staged Usage API page (what to fetch next).
SELECT object, has_more, next_page, length(data) AS buckets
FROM reconciliation_pages
WHERE run_id = {run_id:String} AND source = {source:String} AND page_no = {page_no:UInt32}
