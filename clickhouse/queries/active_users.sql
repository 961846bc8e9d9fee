-- Active users (distinct non-empty user ids) of [since, until), and of its parts from `today` (the UTC day) and from
-- `month` (UTC day starts inside the window, or `since`) to until, with filters, from the `usage` view
-- per day and user. One row.
--   where_keys    dimensions to filter on (user, endpoint, tenant, model, service, operation),
--   where_values  their values (same order)
SELECT
    uniqExactIf(user_id, user_id != '') AS active_users,
    uniqExactIf(user_id, user_id != '' AND bucket >= {month:DateTime('UTC')}) AS active_month,
    uniqExactIf(user_id, user_id != '' AND bucket >= {today:DateTime('UTC')}) AS active_today
FROM usage(grain = 'user_day', since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')})
WHERE arrayAll(
    (k, v) -> multiIf(
        k = 'user', user_id = v,
        k = 'endpoint', endpoint = v,
        k = 'tenant', tenant = v,
        k = 'model', model = v,
        k = 'service', service = v,
        k = 'operation', operation = v,
        false
    ),
    {where_keys:Array(String)},
    {where_values:Array(String)}
)
