"""Every attribute, metric and label name SpendScope emits, in one place.

The instrumentation, the ClickHouse schema, the Prometheus rules and the Grafana dashboards all use
these names, so a name can never drift between them. Span attributes follow the OpenTelemetry GenAI
semantic conventions v1.41.0 where a name exists there; ours are prefixed `spendscope.`.
"""

from typing import Final

SEMCONV_SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.41.0"

# --- span attributes: GenAI semantic conventions v1.41.0 -------------------------------------------
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_STREAM: Final = "gen_ai.request.stream"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
USAGE_PREFIX: Final = "gen_ai.usage."  # the token counts below (the store keeps them with a rejection)
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
# Per-modality counts are not in v1.41; these are the names proposed in semantic-conventions-genai.
USAGE_AUDIO_INPUT_TOKENS: Final = "gen_ai.usage.audio.input_tokens"
USAGE_AUDIO_OUTPUT_TOKENS: Final = "gen_ai.usage.audio.output_tokens"
TOKEN_TYPE: Final = "gen_ai.token.type"
OPENAI_API_TYPE: Final = "openai.api.type"
OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
USER_ID: Final = "user.id"

# --- span attributes: SpendScope's own ------------------------------------------------------------
ENDPOINT: Final = "spendscope.endpoint"
TENANT: Final = "spendscope.tenant"
EXTRA_PREFIX: Final = "spendscope.attr."
COST_USD: Final = "spendscope.cost.usd"  # an exact decimal string (older clients: a double)
PRICE_VERSION: Final = "spendscope.price.version"
# the name the price was found for, where it is not the response's model (the requested one)
PRICE_MODEL: Final = "spendscope.price.model"
QUANTITY_PREFIX: Final = "spendscope.quantity."  # app-recorded numeric quantities, by name
# the audio part of the cached input tokens (Realtime), which is priced apart
USAGE_AUDIO_CACHE_READ_INPUT_TOKENS: Final = "spendscope.usage.audio.cache_read.input_tokens"
USAGE_STATE: Final = "spendscope.usage.state"
USAGE_AUDIO_SECONDS: Final = "spendscope.usage.audio_seconds"
BATCH: Final = "spendscope.batch"  # "true" for Batch API calls (priced at the batch rate)
OPENAI_PROJECT: Final = "openai.project"
OPENAI_API_KEY_REDACTED: Final = "openai.api_key.redacted"

USAGE_STATE_REPORTED: Final = "reported"
USAGE_STATE_UNAVAILABLE: Final = "unavailable"

PROVIDER_OPENAI: Final = "openai"
PROVIDER_AZURE_OPENAI: Final = "azure.ai.openai"

# gen_ai.operation.name values
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
# Not in v1.41's list; OpenAI-specific names, documented in the README.
OP_TRANSCRIPTION: Final = "transcription"
OP_REALTIME: Final = "realtime"

# --- metric instruments (OpenTelemetry names; the Prometheus name follows in the comment) ----------
METRIC_COST: Final = "spendscope.cost.usd"  # spendscope_cost_usd_total
METRIC_TOKENS: Final = "spendscope.tokens"  # spendscope_tokens_total
METRIC_UNPRICED_TOKENS: Final = "spendscope.unpriced.tokens"  # spendscope_unpriced_tokens_total
METRIC_USAGE_UNAVAILABLE: Final = "spendscope.usage.unavailable"  # spendscope_usage_unavailable_total
METRIC_INSTRUMENTATION_ERRORS: Final = "spendscope.instrumentation.errors"  # ..._errors_total
METRIC_USER_LABEL_OVERFLOW: Final = "spendscope.user_label.overflow"  # ..._overflow_total
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"  # gen_ai_client_token_usage_bucket
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"  # ..._duration_seconds_bucket

# Prometheus names as the OpenTelemetry Prometheus exporter renders them (see README).
PROM_COST: Final = "spendscope_cost_usd_total"
PROM_TOKENS: Final = "spendscope_tokens_total"
PROM_UNPRICED_TOKENS: Final = "spendscope_unpriced_tokens_total"
PROM_USAGE_UNAVAILABLE: Final = "spendscope_usage_unavailable_total"
PROM_INSTRUMENTATION_ERRORS: Final = "spendscope_instrumentation_errors_total"
PROM_USER_LABEL_OVERFLOW: Final = "spendscope_user_label_overflow_total"
PROM_TOKEN_USAGE: Final = "gen_ai_client_token_usage"
PROM_OPERATION_DURATION: Final = "gen_ai_client_operation_duration_seconds"

# Metric labels (OpenTelemetry metric attribute keys).
LABEL_MODEL: Final = "model"
LABEL_OPERATION: Final = "operation"
LABEL_ENDPOINT: Final = "endpoint"
LABEL_TENANT: Final = "tenant"
LABEL_USER: Final = "user"
LABEL_SERVICE: Final = "service"
LABEL_TYPE: Final = "type"
LABEL_WHERE: Final = "where"

USER_OVERFLOW_VALUE: Final = "__other__"

# spendscope_tokens_total{type=...}. The types overlap (cached_input is part of input, reasoning is
# part of output): sum only input and output for a total.
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"
TOKEN_TYPE_CACHED_INPUT: Final = "cached_input"
TOKEN_TYPE_CACHE_WRITE_INPUT: Final = "cache_write_input"
TOKEN_TYPE_REASONING: Final = "reasoning"
TOKEN_TYPE_INPUT_AUDIO: Final = "input_audio"
TOKEN_TYPE_OUTPUT_AUDIO: Final = "output_audio"

# Semantic-convention bucket boundaries (v1.41.0).
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

# --- reconciliation (spendscope reconcile): Prometheus metrics of the last run ----------------------
# Gauges describe the latest complete run's window; `cause` is one of spendscope/reconciler's causes
# (untracked, usage_unavailable, failed_billed, tier_batch_mispricing, missing_price, stale_price,
# unexplained); `type` is requests, input or output.
PROM_RECONCILIATION_LAST_SUCCESS: Final = "spendscope_reconciliation_last_success_timestamp_seconds"
PROM_RECONCILIATION_LAST_RUN: Final = "spendscope_reconciliation_last_run_timestamp_seconds"
PROM_RECONCILIATION_RUNS: Final = "spendscope_reconciliation_runs"  # counter: ..._runs_total{status}
PROM_RECONCILIATION_WINDOW_END: Final = "spendscope_reconciliation_window_end_timestamp_seconds"
PROM_RECONCILIATION_TRACKED_TOKENS: Final = "spendscope_reconciliation_tracked_tokens"
PROM_RECONCILIATION_REPORTED_TOKENS: Final = "spendscope_reconciliation_reported_tokens"
PROM_RECONCILIATION_TRACKED_USD: Final = "spendscope_reconciliation_tracked_usd"
PROM_RECONCILIATION_REPORTED_USD: Final = "spendscope_reconciliation_reported_usd"
PROM_RECONCILIATION_COVERAGE: Final = "spendscope_reconciliation_coverage_ratio"
PROM_RECONCILIATION_TOKEN_COVERAGE: Final = "spendscope_reconciliation_token_coverage_ratio"
PROM_RECONCILIATION_RESIDUAL_TOKENS: Final = "spendscope_reconciliation_residual_tokens"
PROM_RECONCILIATION_RESIDUAL_USD: Final = "spendscope_reconciliation_residual_usd"
PROM_RECONCILIATION_CAUSE_CALLS: Final = "spendscope_reconciliation_cause_calls"
PROM_RECONCILIATION_AMBIGUOUS_KEYS: Final = "spendscope_reconciliation_ambiguous_keys"
LABEL_CAUSE: Final = "cause"
LABEL_STATUS: Final = "status"

# --- budgets (spendscope budgets): spend against budgets.yaml, from the ClickHouse rollups ------------
# Per-user series exist only for users at or above the warning percentage of a limit (bounded series);
# tenant series for every tenant with a total budget. `window` is day (UTC) or month (calendar, UTC).
PROM_BUDGET_SPEND: Final = "spendscope_budget_spend_usd"  # {tenant, user, window}
PROM_BUDGET_LIMIT: Final = "spendscope_budget_limit_usd"  # {tenant, user, window}
PROM_BUDGET_TENANT_SPEND: Final = "spendscope_budget_tenant_spend_usd"  # {tenant, window}
PROM_BUDGET_TENANT_LIMIT: Final = "spendscope_budget_tenant_limit_usd"  # {tenant, window}
# Tokens of calls without a price (their cost is unknown, so the spend above leaves them out): every
# tenant with some, and the users with some, listed after the users at or above the warning percentage.
PROM_BUDGET_UNPRICED_TOKENS: Final = "spendscope_budget_unpriced_tokens"  # {tenant, user, window}
PROM_BUDGET_TENANT_UNPRICED_TOKENS: Final = "spendscope_budget_tenant_unpriced_tokens"  # {tenant, window}
PROM_BUDGET_LAST_EVALUATION: Final = "spendscope_budget_last_evaluation_timestamp_seconds"
PROM_BUDGET_EVALUATION_DURATION: Final = "spendscope_budget_evaluation_duration_seconds"
PROM_BUDGET_EVALUATIONS: Final = "spendscope_budget_evaluations"  # counter: ..._total{status}
PROM_BUDGET_USERS_EVALUATED: Final = "spendscope_budget_users_evaluated"
PROM_BUDGET_USERS_OVER_WARNING: Final = "spendscope_budget_users_over_warning"
PROM_BUDGET_USERS_EXPORTED: Final = "spendscope_budget_users_exported"
LABEL_WINDOW: Final = "window"
WINDOW_DAY: Final = "day"
WINDOW_MONTH: Final = "month"

# --- Prometheus scrape jobs (prometheus/prometheus.yml); the alert rules select on them -------------
JOB_COLLECTOR: Final = "spendscope-collector"  # the collector's /metrics: apps' metrics + its health
JOB_APPS: Final = "spendscope-apps"  # apps serving their own /metrics (metrics_exporter=prometheus)
JOB_BUDGETS: Final = "spendscope-budgets"  # spendscope budgets
JOB_RECONCILER: Final = "spendscope-reconciler"  # spendscope reconcile
