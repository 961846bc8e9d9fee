-- Reconciliation (spendscope reconcile, spendscope/reconciler): what SpendScope tracked in llm_usage
-- against what OpenAI reports in its organization Usage API (tokens) and Costs API (dollars).
--
-- Results, for Grafana:
--   reconciliation_runs   one row per run: its windows, totals, coverage, residual by cause, status.
--                         A run that failed (a partial fetch, an error) is written with status 'failed'
--                         and no totals; only 'complete' rows carry results.
--   reconciliation_diffs  the residual (reported - tracked), decomposed: kind 'cause' rows (one per
--                         comparison group and cause) and kind 'line_item' rows (SpendScope's cost
--                         against the Costs API per UTC day, project and line item).
-- Re-running a window replaces its results: a complete run deletes the diffs of earlier runs whose
-- buckets lie inside its window, and the earlier runs of exactly the same window. Read the latest
-- state through reconciliation_runs_latest; diffs never overlap after a complete run.
--
-- Staging (per run, dropped when the run ends; the TTL removes what a killed run left behind):
--   reconciliation_pages    Usage API pages as received, parsed by ClickHouse on insert (JSONEachRow into
--                           the documented envelope's types), so pages stream through ClickHouse and
--                           are never all held in memory; fields the reconciler does not read are skipped.
--   reconciliation_tracked  llm_usage of the window, aggregated to the comparison grain.
CREATE TABLE IF NOT EXISTS reconciliation_pages (
    run_id String,
    source LowCardinality(String),
    page_no UInt32,
    fetched_at DateTime('UTC') DEFAULT now(),
    object String,
    has_more Bool,
    next_page Nullable(String),
    data Array(Tuple(
        start_time Int64,
        end_time Int64,
        results Array(Tuple(
            project_id Nullable(String),
            api_key_id Nullable(String),
            model Nullable(String),
            batch Nullable(Bool),
            service_tier Nullable(String),
            num_model_requests UInt64,
            input_tokens UInt64,
            output_tokens UInt64,
            input_cached_tokens Nullable(UInt64),
            input_audio_tokens Nullable(UInt64),
            input_cached_audio_tokens Nullable(UInt64),
            output_audio_tokens Nullable(UInt64),
            seconds Nullable(Float64)
        ))
    ))
) ENGINE = MergeTree
PARTITION BY run_id
ORDER BY (source, page_no)
TTL fetched_at + INTERVAL 2 DAY;

CREATE TABLE IF NOT EXISTS reconciliation_tracked (
    run_id String,
    fetched_at DateTime('UTC') DEFAULT now(),
    source LowCardinality(String),
    bucket DateTime('UTC'),
    project_id String,
    api_key_id String,
    key_mapping LowCardinality(String),
    model String,
    model_raw String,
    batch Bool,
    service_tier LowCardinality(String),
    price_version LowCardinality(String),
    priced Bool,
    ok_calls Int64,
    unavailable_calls Int64,
    error_calls Int64,
    input_tokens Int64,
    cached_input_tokens Int64,
    cache_write_input_tokens Int64,
    output_tokens Int64,
    input_audio_tokens Int64,
    output_audio_tokens Int64,
    audio_seconds Float64,
    cost_usd Decimal(38, 18),
    max_input_tokens Int64
) ENGINE = MergeTree
PARTITION BY run_id
ORDER BY tuple()
TTL fetched_at + INTERVAL 2 DAY;

CREATE TABLE IF NOT EXISTS reconciliation_runs (
    run_id String,
    status LowCardinality(String),
    error String,
    -- the window asked for, and the closed parts compared: tokens over [window_start, usage_end),
    -- dollars over the whole UTC days [costs_start, costs_end) (empty when no day is closed yet)
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    usage_end DateTime('UTC'),
    costs_start DateTime('UTC'),
    costs_end DateTime('UTC'),
    bucket_width LowCardinality(String),
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC'),
    tracked_requests Int64,
    reported_requests Int64,
    tracked_tokens Int64,
    reported_tokens Int64,
    residual_tokens Int64,
    tracked_usd Decimal(38, 18),
    reported_usd Nullable(Decimal(38, 18)),
    residual_usd Nullable(Decimal(38, 18)),
    coverage_ratio Nullable(Float64),
    token_coverage_ratio Nullable(Float64),
    min_coverage Float64,
    passed Bool,
    cause_tokens Map(LowCardinality(String), Int64),
    cause_usd Map(LowCardinality(String), Decimal(38, 18)),
    cause_calls Map(LowCardinality(String), Int64),
    ambiguous_keys Array(String),
    unmapped_keys Array(String),
    pages UInt32,
    requests_made UInt32
) ENGINE = MergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, window_end, started_at, run_id);

CREATE TABLE IF NOT EXISTS reconciliation_diffs (
    run_id String,
    kind LowCardinality(String),
    cause LowCardinality(String),
    detail String,
    source LowCardinality(String),
    bucket DateTime('UTC'),
    bucket_end DateTime('UTC'),
    project_id String,
    api_key_id String,
    key_mapping LowCardinality(String),
    model String,
    batch Bool,
    service_tier LowCardinality(String),
    line_item String,
    requests Int64,
    input_tokens Int64,
    cached_input_tokens Int64,
    output_tokens Int64,
    input_audio_tokens Int64,
    output_audio_tokens Int64,
    audio_seconds Float64,
    tokens Int64,
    calls Int64,
    usd Nullable(Decimal(38, 18)),
    tracked_usd Nullable(Decimal(38, 18)),
    reported_usd Nullable(Decimal(38, 18))
) ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, kind, cause, project_id, api_key_id, model, run_id);

-- The latest complete run of every window.
CREATE VIEW IF NOT EXISTS reconciliation_runs_latest AS
SELECT *
FROM reconciliation_runs
WHERE status = 'complete'
ORDER BY window_start, window_end, started_at DESC
LIMIT 1 BY window_start, window_end;
