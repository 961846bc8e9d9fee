# SpendScope's server side: the collector, migrations, reports and the reconciler.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY spendscope ./spendscope
COPY clickhouse ./clickhouse
RUN pip install --no-cache-dir '.[collector]'
USER nobody
EXPOSE 4318
ENTRYPOINT ["spendscope"]
CMD ["collector", "--listen", "0.0.0.0:4318"]
