# The aiomove retrieval daemon: Storage SCP + job workers + HTTP API (issue 6).
# Build from the repository root:  docker build -f docker/daemon.Dockerfile -t aiomove-daemon .
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# [daemon]: SQLAlchemy async + aiosqlite/asyncpg, alembic, Starlette, hypercorn, prometheus;
# [fast]: uvloop.
RUN pip install ".[daemon,fast]" \
    && useradd --system --uid 10001 --home-dir /var/lib/aiomove --create-home aiomove \
    && mkdir -p /data /etc/aiomove \
    && chown aiomove /data
USER aiomove
# 11112: Storage SCP (the PACS sends here); 8080: HTTP API, /metrics, /health.
EXPOSE 11112 8080
VOLUME ["/data"]
# No curl in the slim image: the standard library asks /health (200 while the store answers).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AIOMOVE_HTTP_PORT', '8080') + '/health', timeout=4)"]
# SIGTERM: stop claiming, let running jobs finish for `grace` seconds, C-CANCEL, release.
STOPSIGNAL SIGTERM
ENTRYPOINT ["aiomove"]
CMD ["daemon", "--config", "/etc/aiomove/aiomove.toml"]
