-- What an invoice states besides its lines (spendscope/store/invoice.py):
--   seen               the store has ever seen the tenant: a call at any time (llm_usage or, past the raw
--                      retention, the rollups) or a margin
--   price_versions     the price data the tenant's calls in [since, until) were priced with by the store
--                      (llm_usage FINAL: the calls kept, see the raw retention)
--   client_cost_calls  of those calls, how many carry the cost their client sent (trust_client_costs)
SELECT
    (SELECT count() FROM (SELECT 1 FROM llm_usage WHERE tenant = {tenant:String} LIMIT 1))
        + (SELECT count() FROM (SELECT 1 FROM llm_usage_rollup WHERE tenant = {tenant:String} LIMIT 1))
        + (SELECT count() FROM (SELECT 1 FROM tenant_margins WHERE tenant = {tenant:String} LIMIT 1))
        > 0 AS seen,
    arraySort(groupUniqArrayIf(price_version, price_version != '')) AS price_versions,
    countIf(cost_source = 'client') AS client_cost_calls
FROM llm_usage FINAL
WHERE tenant = {tenant:String} AND time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}
