"""`spendscope collector`: an OTLP/HTTP receiver that writes spans to the ClickHouse store, re-exposes
the apps' OTLP metrics (and its own) for Prometheus, and serves usage reports.

    from spendscope.collector import Collector, CollectorConfig

    with Collector(CollectorConfig.resolve(listen="127.0.0.1:0", store="/var/lib/spendscope")) as c:
        print(c.url)  # point OTEL_EXPORTER_OTLP_ENDPOINT here
"""

from spendscope.collector._collector import Collector, CollectorError
from spendscope.settings.collector import CollectorConfig

__all__ = ["Collector", "CollectorConfig", "CollectorError"]
