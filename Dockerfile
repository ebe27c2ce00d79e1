# Chat Orchestrator, droplet 12. One worker per container: scale with replicas, not workers.
FROM python:3.11-slim

# The version is written only in pyproject.toml; `make image` passes it here. The running
# service reports its own (from the installed package) on /health and /version.
ARG VERSION=unknown
LABEL droplet.id="12" \
      droplet.name="Chat Orchestrator" \
      droplet.version="${VERSION}" \
      droplet.udc_compliant="true" \
      droplet.capabilities="chat,natural_language_understanding,conversation_memory,task_execution,voice_formatting"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENVIRONMENT=production \
    LOG_FORMAT=json \
    PORT=8012

WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY alembic ./alembic
# The service runs from /app/app (WORKDIR), not from the installed copy, and PYTHONDONTWRITEBYTECODE
# keeps it from caching bytecode there: compiled here, or every start compiles ~120 modules
# (~0.15 s of the start-up, issue 17).
RUN pip install --no-deps . \
    && python -m compileall -q app alembic \
    && useradd --create-home --uid 10012 droplet \
    && mkdir -p /app/data /app/keys \
    && chown -R droplet:droplet /app/data

USER droplet
EXPOSE 8012

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8012/health', timeout=2).status == 200 else 1)"

CMD ["python", "-m", "app.main"]
