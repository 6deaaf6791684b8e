# consent-gateway: the gateway as one container.
#
#   docker build -t consent-gateway .
#   docker run -p 8000:8000 -v cg-data:/data \
#     -e CONSENT_GATEWAY_SECRET_KEYS=change-me \
#     -e CONSENT_GATEWAY_CONFIG=/config/gateway.toml -v "$PWD/my-config:/config:ro" \
#     consent-gateway
#
# The SQLite database lives in the /data volume. Several nodes share one PostgreSQL database
# instead (CONSENT_GATEWAY_DATABASE=postgresql://user@host:5432/db): docker-compose.yml runs two
# behind Caddy. Behind a reverse proxy, set FORWARDED_ALLOW_IPS to the proxy's address so uvicorn
# trusts its X-Forwarded-For.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid/gid so orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway

# The cookie scanner (the dashboard's Compliance page, `consent-gateway scan`) drives Debian's Chromium
# through Playwright: some 300 MB more. Leave it out with `docker build --build-arg SCANNER=0 .`; the
# Compliance page then says what a scan needs.
ARG SCANNER=1
RUN if [ "$SCANNER" = "1" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends chromium fonts-liberation \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# The wheel carries config/, consent_ui/ (templates, CSS, the nine languages) and snippets/
# (the scripts /c.js and /t.js are built from) inside the package (hatch force-include).
# The sources are removed once installed.
WORKDIR /src
COPY . .
# The PostgreSQL driver is the `postgresql` extra: psycopg[binary] ships its own libpq, so the
# slim image needs no system packages. The import check fails the build, not the first start, if
# it went missing.
RUN if [ "$SCANNER" = "1" ]; then target=".[postgresql,scan]"; else target=".[postgresql]"; fi \
    && pip install --no-cache-dir "$target" \
    && cd / && rm -rf /src \
    && python -c "import psycopg, psycopg_pool; print('psycopg', psycopg.__version__, psycopg.pq.__impl__, 'libpq', psycopg.pq.version())"

RUN mkdir /data && chown gateway:gateway /data
VOLUME ["/data"]
WORKDIR /data

ENV CONSENT_GATEWAY_DATABASE=/data/gateway.sqlite3 \
    CONSENT_GATEWAY_HOST=0.0.0.0

USER 10001:10001
EXPOSE 8000

# No curl in the slim image: python's urllib. A 503 (database unreachable) raises, so it fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CONSENT_GATEWAY_PORT', '8000'), timeout=4)"]

# Pass --config (or CONSENT_GATEWAY_CONFIG) and CONSENT_GATEWAY_SECRET_KEYS.
CMD ["consent-gateway", "serve"]
