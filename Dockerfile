# SpendScope's side of docker-compose.yml, one image for all of it: the collector, migrations, the budget
# evaluator, the reconciler and the demo workload.
FROM python:3.11-slim
# jemalloc: the collector runs on it, to give a burst's memory back (spendscope/collector/_memory.py)
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY spendscope ./spendscope
COPY clickhouse ./clickhouse
# /var/lib/spendscope belongs to nobody so that a named volume mounted there (the collector's spool)
# starts out writable.
RUN pip install --no-cache-dir -c constraints.txt '.[demo]' \
    && mkdir -p /var/lib/spendscope && chown nobody:nogroup /var/lib/spendscope
USER nobody
EXPOSE 4318
ENTRYPOINT ["spendscope"]
CMD ["collector", "--listen", "0.0.0.0:4318"]
