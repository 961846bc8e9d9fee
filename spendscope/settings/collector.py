"""The collector's settings (`spendscope collector`, `spendscope.collector.Collector`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Self

from pydantic import AfterValidator, Field, model_validator

from spendscope.settings import DEFAULT_STORE, STORE_ENV, ConfigurationError
from spendscope.settings._base import Settings
from spendscope.settings._types import AbsolutePath, Listen, PriceFile, Seconds, Text, Whole

if TYPE_CHECKING:
    from spendscope.collector._limits import Limits

MiB: Final = 1024 * 1024
# The deepest nesting attribute_depth_limit allows: protobuf's parser stops at 100 nested messages, and
# an array in an array costs two (AnyValue, ArrayValue) below the five a span attribute sits under.
MAX_DEPTH: Final = 32


def _dsn(value: str) -> str:
    from spendscope.store.dsn import parse_dsn  # not at import: the CLI's help needs no store
    from spendscope.store.errors import StoreError

    try:
        parse_dsn(value)
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    return value


Dsn = Annotated[Text, AfterValidator(_dsn)]


class CollectorConfig(Settings):
    """Everything the collector needs: `CollectorConfig.resolve(...)` applies the environment."""

    component = "collector"

    listen: Listen = Field(
        ("127.0.0.1", 4318),
        validation_alias="SPENDSCOPE_COLLECTOR_LISTEN",
        description="HOST:PORT to serve on",
    )
    store: Dsn = Field(
        DEFAULT_STORE,
        validation_alias=STORE_ENV,
        description="the store: a directory (a local store, its server started if need be) or "
        "http(s)://user:pass@host:8123/db (a server)",
    )
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
        160 * MiB,
        ge=1024,
        validation_alias="SPENDSCOPE_COLLECTOR_QUEUE_BYTES",
        description="encoded bytes of spans held in memory before answering 503",
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
