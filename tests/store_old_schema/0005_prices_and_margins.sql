-- Prices as data: USD per million tokens in force from `effective_from` (a UTC date) until the next
-- row of the same (model, service_tier). Loaded by SpendScope from genai-prices and the user price
-- file (the same Pricer that prices spans), for the models seen in llm_usage and the common OpenAI
-- ones. A row of NULL prices means no price is known (the cost is unknown, not 0); a NULL in a priced
-- row is a token type the model does not charge separately. Every load writes a complete new
-- generation (one loaded_at); read prices through model_prices_current, the latest generation only,
-- so a price removed from the price file disappears on the next load.
CREATE TABLE IF NOT EXISTS model_prices (
    model LowCardinality(String),
    service_tier LowCardinality(String),
    effective_from Date,
    input_mtok Nullable(Decimal(38, 18)),
    cached_input_mtok Nullable(Decimal(38, 18)),
    cache_write_mtok Nullable(Decimal(38, 18)),
    output_mtok Nullable(Decimal(38, 18)),
    input_audio_mtok Nullable(Decimal(38, 18)),
    output_audio_mtok Nullable(Decimal(38, 18)),
    source String,
    loaded_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (model, service_tier, effective_from);

CREATE VIEW IF NOT EXISTS model_prices_current AS
SELECT model, service_tier, effective_from, input_mtok, cached_input_mtok, cache_write_mtok,
    output_mtok, input_audio_mtok, output_audio_mtok, source, loaded_at
FROM model_prices
WHERE loaded_at = (SELECT max(loaded_at) FROM model_prices);

-- Billing: the margin a tenant is billed on top of provider cost, in force from `effective_from`
-- (a UTC date) until the tenant's next row. Tenants without a row get the default margin
-- (SPENDSCOPE_MARGIN_PERCENT, 0 if unset), bound as a query parameter. Read with FINAL.
CREATE TABLE IF NOT EXISTS tenant_margins (
    tenant LowCardinality(String),
    effective_from Date,
    margin_percent Decimal(9, 4),
    updated_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, effective_from);
