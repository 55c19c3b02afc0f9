# syntax=docker/dockerfile:1
# Kehu CRM: the SPA is built in a Node stage and served by the Python app.

FROM node:20-bookworm-slim AS spa
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npx vite build

FROM python:3.11-slim-bookworm AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEHU_DATABASE_URL=sqlite+aiosqlite:////data/kehu.db \
    KEHU_ANALYTICS_CACHE_DIR=/data/analytics \
    KEHU_SPA_DIR=/app/frontend/dist
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml alembic.ini ./
COPY app/ app/
COPY migrations/ migrations/
RUN pip install --no-cache-dir --no-deps .
COPY --from=spa /src/frontend/dist /app/frontend/dist
RUN useradd --system --uid 10001 kehu && mkdir -p /data && chown kehu /data
USER kehu
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
# Migrate, then serve. Scale out with KEHU_WORKERS (PostgreSQL only) — see docs/operations.md.
CMD ["sh", "-c", "kehu migrate && exec kehu serve --host 0.0.0.0 --port 8000 --workers ${KEHU_WORKERS:-1}"]
