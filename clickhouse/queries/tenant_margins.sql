-- The margins in force over time, for one tenant or (tenant = '') all of them.
SELECT tenant, effective_from, margin_percent
FROM tenant_margins FINAL
WHERE {tenant:String} = '' OR tenant = {tenant:String}
ORDER BY tenant, effective_from
