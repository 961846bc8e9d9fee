"""ClickHouse storage: schema migrations, span inserts and named queries, through clickhouse-connect.

    store = open_store("http://user:pass@host:8123/db")   # or a local store's directory, its server running
    store.migrate()
    store.insert_spans(records)                             # the collector's SpanSink
    report(store, by="user", since=..., until=..., where={"tenant": "acme"})

The SQL lives in the repository's `clickhouse/` folder (shipped inside the wheel).
"""

from spendscope.store.errors import ReportError, StoreError
from spendscope.store.records import SpanEvent, SpanLink, SpanRecord, SpanSink
from spendscope.store.reports import Report, report
from spendscope.store.store import Store, open_store

__all__ = [
    "Report",
    "ReportError",
    "SpanEvent",
    "SpanLink",
    "SpanRecord",
    "SpanSink",
    "Store",
    "StoreError",
    "open_store",
    "report",
]
