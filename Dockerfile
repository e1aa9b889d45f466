# llmrelay in a container: the gateway on port 8080, its SQLite file and usage spill file in the /data volume.
#
#   docker build -t llmrelay .
#   docker run -d --name llmrelay -p 8080:8080 -v llmrelay-data:/data -e OPENAI_API_KEY=sk-... llmrelay
#   docker exec llmrelay llmrelay keys create --name alice --quota-usd 5
#
# With a config file: -v "$PWD/llmrelay.yaml:/etc/llmrelay/llmrelay.yaml:ro" -e LLMRELAY_CONFIG=/etc/llmrelay/llmrelay.yaml
# (start from llmrelay.example.yaml). PostgreSQL instead of SQLite: -e LLMRELAY_DATABASE_URL=postgresql://...
# The admin API: -e LLMRELAY_ADMIN_KEY=...  Another port (server.port or --port): change EXPOSE and HEALTHCHECK.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The package and its runtime dependencies only (every one ships a wheel: no compiler needed), not the test extras.
# The slim image has no C compiler, so llmrelay's optional extensions (setup.py: the event scan, the chunk reader
# and the body writes) are not built and every event takes its Python path: the same bytes, more CPU per event.
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY llmrelay ./llmrelay
RUN pip install . && rm -rf /src

# A system user without a login shell owns the data directory; the gateway never runs as root.
RUN groupadd --system --gid 10001 llmrelay \
    && useradd --system --uid 10001 --gid llmrelay --home-dir /data --no-create-home --shell /usr/sbin/nologin llmrelay \
    && mkdir /data \
    && chown llmrelay:llmrelay /data

# `docker stop` sends SIGTERM and kills the process 10 s later; requests in flight get 8 s to finish, so the
# last usage batch is written before that (raise both together: docker run --stop-timeout 40 and
# -e LLMRELAY_GRACEFUL_TIMEOUT=30).
ENV LLMRELAY_DATA_DIR=/data \
    LLMRELAY_GRACEFUL_TIMEOUT=8
VOLUME /data
WORKDIR /data
USER 10001:10001

EXPOSE 8080
# python:3.11-slim has no curl: the check asks /health with the standard library (any error or non-2xx fails it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

STOPSIGNAL SIGTERM
# Inside a container the gateway must listen on every interface to be reachable through the published port.
CMD ["llmrelay", "serve", "--host", "0.0.0.0"]
