"""ClickHouse storage: schema migrations, span inserts and named queries, through clickhouse-connect."""
