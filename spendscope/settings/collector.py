"""The collector's settings (`spendscope collector`, `spendscope.collector.Collector`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Self

from pydantic import Field, model_validator

from spendscope.settings import ConfigurationError
from spendscope.settings._base import Settings
from spendscope.settings._types import (
    DEFAULT_STORE,
    AbsolutePath,
    Listen,
    PriceFile,
    Seconds,
    Secret,
    StoreDsn,
    Text,
    Whole,
)

if TYPE_CHECKING:
    from spendscope.collector._limits import Limits

MiB: Final = 1024 * 1024
# The deepest nesting attribute_depth_limit allows: protobuf's parser stops at 100 nested messages, and
# an array in an array costs two (AnyValue, ArrayValue) below the five a span attribute sits under.
MAX_DEPTH: Final = 32


class CollectorConfig(Settings):
    """Everything the collector needs: `CollectorConfig.resolve(...)` applies the environment."""

    component = "collector"

    listen: Listen = Field(
        ("127.0.0.1", 4318),
        validation_alias="SPENDSCOPE_COLLECTOR_LISTEN",
        description="HOST:PORT to serve on",
    )
    store: StoreDsn = DEFAULT_STORE
    spool: AbsolutePath | None = Field(
        None,
        validation_alias="SPENDSCOPE_COLLECTOR_SPOOL",
        description="directory for batches the store could not take (default: <store directory>-spool)",
    )
    price_file: PriceFile = Field(
        None,
        description="TOML/JSON price overrides: with genai-prices, what the collector loads into "
        "model_prices on start",
    )
    max_body_bytes: Whole = Field(
        20 * MiB,
        ge=1024,
        validation_alias="SPENDSCOPE_COLLECTOR_MAX_BODY_BYTES",
        description="largest request body, before and after decompression (413 beyond)",
    )
    max_decoded_bytes: Whole = Field(
        256 * MiB,
        ge=MiB,
        validation_alias="SPENDSCOPE_COLLECTOR_MAX_DECODED_BYTES",
        description="memory one request may take once decoded, estimated as it is decoded (413 beyond)",
    )
    allocator: Literal["auto", "jemalloc", "python"] = Field(
        "auto",
        validation_alias="SPENDSCOPE_COLLECTOR_ALLOCATOR",
        description="the `spendscope collector` process's memory allocator: `jemalloc` (Debian's "
        "libjemalloc2, preloaded) gives a burst's memory back once it is written, `python` keeps what "
        "Python's allocator holds; `auto`: jemalloc when installed (bench/README.md, Memory under overload)",
    )
    decoders: Whole = Field(
        1,
        ge=1,
        validation_alias="SPENDSCOPE_COLLECTOR_DECODERS",
        description="requests decoded at once, each within max_decoded_bytes (the others wait their turn)",
    )
    attribute_count_limit: Whole = Field(
        128,
        ge=1,
        validation_alias="SPENDSCOPE_COLLECTOR_ATTRIBUTE_COUNT_LIMIT",
        description="attributes of a span, resource, scope, event, link or data point, and entries of an "
        "array or map value (a span or point over it is refused)",
    )
    attribute_value_length_limit: Whole = Field(
        65_536,
        ge=64,
        validation_alias="SPENDSCOPE_COLLECTOR_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        description="characters of an attribute value (each element of an array) and of every name, key "
        "and message",
    )
    attribute_depth_limit: Whole = Field(
        8,
        ge=1,
        le=MAX_DEPTH,
        validation_alias="SPENDSCOPE_COLLECTOR_ATTRIBUTE_DEPTH_LIMIT",
        description="arrays and maps nested in one another in an attribute value",
    )
    span_event_count_limit: Whole = Field(
        128,
        ge=0,
        validation_alias="SPENDSCOPE_COLLECTOR_SPAN_EVENT_COUNT_LIMIT",
        description="events of a span",
    )
    span_link_count_limit: Whole = Field(
        128,
        ge=0,
        validation_alias="SPENDSCOPE_COLLECTOR_SPAN_LINK_COUNT_LIMIT",
        description="links of a span",
    )
    queue_spans: Whole = Field(
        150_000,
        ge=1,
        validation_alias="SPENDSCOPE_COLLECTOR_QUEUE_SPANS",
        description="spans held in memory before answering 503",
    )
    queue_bytes: Whole = Field(
        256 * MiB,
        ge=1024,
        validation_alias="SPENDSCOPE_COLLECTOR_QUEUE_BYTES",
        description="memory of the spans held until written (their rows, estimated when decoded) before "
        "answering 503",
    )
    batch_spans: Whole = Field(
        50_000,
        ge=1,
        validation_alias="SPENDSCOPE_COLLECTOR_BATCH_SPANS",
        description="spans per insert (each insert costs ClickHouse ~0.5 s of CPU besides its spans: "
        "larger is cheaper)",
    )
    flush_interval: Seconds = Field(
        1.0,
        gt=0,
        le=3600,
        validation_alias="SPENDSCOPE_COLLECTOR_FLUSH_INTERVAL",
        description="seconds a span may wait for its batch to fill",
    )
    token: Text | None = Field(
        None,
        validation_alias="SPENDSCOPE_COLLECTOR_TOKEN",
        description="bearer token every request must carry (none: no authentication)",
    )
    session_secret: Secret | None = Field(
        None,
        validation_alias="SPENDSCOPE_SESSION_SECRET",
        description="key that signs the portal's sign-in cookie (none: a random one per process, so a "
        "restart signs everyone out; collectors behind one address need the same)",
    )
    spool_max_bytes: Whole = Field(
        4096 * MiB,
        ge=0,
        validation_alias="SPENDSCOPE_COLLECTOR_SPOOL_MAX_BYTES",
        description="spool size beyond which new spans get 503 while the store is down (0: no limit)",
    )
    rollup_interval: Seconds = Field(
        60.0,
        ge=0,
        le=3600,
        validation_alias="SPENDSCOPE_COLLECTOR_ROLLUP_INTERVAL",
        description="seconds between runs of the rollup builder (0: never; `spendscope rollups build` "
        "runs it once)",
    )
    writers: Whole = Field(
        2,
        ge=1,
        validation_alias="SPENDSCOPE_COLLECTOR_WRITERS",
        description="batches inserted at once, each on its own store connection",
    )

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> Self:
        _check_batch(self.batch_spans, self.queue_spans)
        return self

    @property
    def store_dir(self) -> Path | None:
        """A local store's data directory, or None for a ClickHouse server."""
        from spendscope.store.dsn import parse_dsn

        return parse_dsn(self.store).directory

    @property
    def limits(self) -> Limits:
        """What one request may hold (spendscope/collector/_limits.py)."""
        from spendscope.collector._limits import Limits

        return Limits(
            attribute_count=self.attribute_count_limit,
            attribute_value_length=self.attribute_value_length_limit,
            attribute_depth=self.attribute_depth_limit,
            span_events=self.span_event_count_limit,
            span_links=self.span_link_count_limit,
            decoded_bytes=self.max_decoded_bytes,
        )

    @property
    def spool_dir(self) -> Path:
        """The spool directory: as set, else next to a local store's directory (`<dir>-spool`), else
        ./spendscope-spool for a ClickHouse server."""
        if self.spool is not None:
            return self.spool
        data = self.store_dir
        if data is not None:
            return data.with_name(data.name + "-spool")
        return Path("spendscope-spool").absolute()

    def with_(self, **changes: Any) -> CollectorConfig:
        """These settings with `changes` (values as they are, as the tests give them), checked again."""
        changed = self.model_copy(update=changes)
        try:
            _check_batch(changed.batch_spans, changed.queue_spans)
        except ValueError as exc:
            raise ConfigurationError(f"{self.component} setting {exc}") from None
        return changed


def _check_batch(batch_spans: int, queue_spans: int) -> None:
    if batch_spans > queue_spans:
        raise ValueError(f"batch_spans ({batch_spans}) must not exceed queue_spans ({queue_spans})")
