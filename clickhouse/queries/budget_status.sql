-- Budget status for `spendscope budgets` (spendscope/budgets): every (tenant, user) with calls this
-- calendar month (the `usage` view per day and user: exact), its spend today (UTC) and this month,
-- against its limits joined in SQL.
-- One row per tenant: the tenant's day and month totals, how many users it has, how many are at or
-- above the warning percentage of a limit, and at most max_users of those (the highest share of a
-- limit first), then the users with unpriced tokens (a cost unknown, not $0: the spend counts the priced
-- calls only, so the tokens are counted as they are). Users below the warning percentage without
-- unpriced tokens never leave ClickHouse.
--   today                          the UTC day evaluated; the month is toStartOfMonth(today) .. today
--   warning_percent                a user is listed when spend * 100 >= warning_percent * limit
--   default_day, default_month     every user's limits (inf: no limit)
--   tenants, tenant_day/_month     per-user limits inside a tenant (NULL: the default; inf: no limit)
--   users, user_day/_month         per-user limits of a user id, in any tenant (NULL: the tenant's)
--   max_users                      at most this many listed users per tenant
-- Columns: tenant, tenant_day_usd, tenant_month_usd, users, users_over_warning, listed =
--   [(user, day_usd, day_limit, day_listed, month_usd, month_limit, month_listed, share,
--     day_unpriced_tokens, month_unpriced_tokens), ...], tenant_day_unpriced_tokens,
--   tenant_month_unpriced_tokens
SELECT
    tenant,
    sum(day_usd) AS tenant_day_usd,
    sum(month_usd) AS tenant_month_usd,
    count() AS users,
    countIf(day_listed OR month_listed) AS users_over_warning,
    arraySlice(
        arraySort(
            x -> (-x.8, x.1),
            groupArrayIf(
                (
                    user_id, day_usd, day_limit, day_listed, month_usd, month_limit, month_listed, share,
                    day_unpriced_tokens, month_unpriced_tokens
                ),
                day_listed OR month_listed OR month_unpriced_tokens > 0
            )
        ),
        1,
        {max_users:UInt32}
    ) AS listed,
    sum(day_unpriced_tokens) AS tenant_day_unpriced_tokens,
    sum(month_unpriced_tokens) AS tenant_month_unpriced_tokens
FROM (
    SELECT
        spend.tenant AS tenant,
        spend.user_id AS user_id,
        spend.day_usd AS day_usd,
        spend.month_usd AS month_usd,
        spend.day_unpriced_tokens AS day_unpriced_tokens,
        spend.month_unpriced_tokens AS month_unpriced_tokens,
        coalesce(u.day_limit, t.day_limit, {default_day:Float64}) AS day_limit,
        coalesce(u.month_limit, t.month_limit, {default_month:Float64}) AS month_limit,
        spend.day_usd * 100 >= {warning_percent:Float64} * day_limit AS day_listed,
        spend.month_usd * 100 >= {warning_percent:Float64} * month_limit AS month_listed,
        greatest(spend.day_usd / day_limit, spend.month_usd / month_limit) AS share
    FROM (
        SELECT
            tenant,
            user_id,
            toFloat64(sumIf(cost_usd, toDate(bucket) = {today:Date})) AS day_usd,
            toFloat64(sum(cost_usd)) AS month_usd,
            sumIf(unpriced_input_tokens + unpriced_output_tokens, toDate(bucket) = {today:Date})
                AS day_unpriced_tokens,
            sum(unpriced_input_tokens + unpriced_output_tokens) AS month_unpriced_tokens
        FROM usage(
            grain = 'user_day',
            since = toDateTime64(toStartOfMonth({today:Date}), 9, 'UTC'),
            until = toDateTime64({today:Date} + 1, 9, 'UTC')
        )
        GROUP BY tenant, user_id
    ) AS spend
    LEFT JOIN (
        SELECT o.1 AS user_id, o.2 AS day_limit, o.3 AS month_limit
        FROM (
            SELECT arrayJoin(arrayZip(
                {users:Array(String)}, {user_day:Array(Nullable(Float64))}, {user_month:Array(Nullable(Float64))}
            )) AS o
        )
    ) AS u ON spend.user_id = u.user_id
    LEFT JOIN (
        SELECT o.1 AS tenant, o.2 AS day_limit, o.3 AS month_limit
        FROM (
            SELECT arrayJoin(arrayZip(
                {tenants:Array(String)}, {tenant_day:Array(Nullable(Float64))}, {tenant_month:Array(Nullable(Float64))}
            )) AS o
        )
    ) AS t ON spend.tenant = t.tenant
)
GROUP BY tenant
ORDER BY tenant
