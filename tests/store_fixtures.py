"""ClickHouse fixtures (owned by the store work; see spendscope/store)."""
