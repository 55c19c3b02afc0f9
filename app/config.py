"""Settings: one pydantic-settings object, read from the environment (prefix ``KEHU_``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEHU_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'kehu.db'}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    # When unset, a random key is generated on first start and stored in the database, so every
    # worker process of one deployment signs and verifies with the same key.
    secret_key: str | None = None
    jwt_issuer: str = "kehu"
    jwt_audience: str = "kehu-api"
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    login_max_failures: int = 5
    login_window_seconds: int = 60
    # Webhooks (SPEC J2): receivers must be https on public addresses; the two allow_* settings
    # are for development and tests only.
    webhooks_allow_http: bool = False
    webhooks_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=5)
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    webhook_failure_limit: int = Field(default=20, ge=1)
    webhook_dispatch_interval_seconds: int = Field(default=10, ge=1)
    # Requests per minute per user (their own sign-in) and per API key; 0: no limit. Counted in
    # the database on PostgreSQL (shared by the workers), in memory on SQLite (one process).
    rate_limit_user_per_minute: int = Field(default=600, ge=0)
    rate_limit_key_per_minute: int = Field(default=1200, ge=0)
    idempotency_ttl_hours: int = 24
    idempotency_in_flight_seconds: int = 60
    password_hash_threads: int = 4
    max_body_bytes: int = 1_048_576
    # Bulk endpoints (10,000 orders in one call) accept larger bodies.
    max_bulk_body_bytes: int = 16_777_216
    # Imports (SPEC I1): the largest file accepted (a larger upload is refused with 413 before
    # it is read), the most data rows in one file, rows written per transaction by the import
    # job, how often the job looks for queued imports, and after how long without progress a
    # running import counts as abandoned (its process died) and is taken over.
    import_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    import_max_rows: int = Field(default=100_000, ge=1, le=1_000_000)
    import_chunk_rows: int = Field(default=2000, ge=100, le=10_000)
    import_poll_seconds: int = Field(default=5, ge=1, le=3600)
    import_stale_seconds: int = Field(default=300, ge=30)
    # Chunks written at once on PostgreSQL (each on its own connection; they commit in order),
    # and worker processes cleaning rows beside the job and dry runs (0: a thread instead).
    import_writers: int = Field(default=2, ge=1, le=8)
    import_clean_processes: int = Field(default=1, ge=0, le=8)
    spa_dir: Path = PROJECT_ROOT / "frontend" / "dist"
    # /metrics: when set, scrapers must send "Authorization: Bearer <token>".
    metrics_token: str | None = None
    scheduler_enabled: bool = True
    # Reminders: how late a reminder may still be pushed after downtime; older ones are "missed".
    reminder_max_lateness_minutes: int = 60
    dispatch_interval_seconds: int = 60
    # Birthdays and signing anniversaries remind the owner this many days ahead.
    relationship_days_ahead: int = 3
    # Contracts ending within this many days remind their owner.
    contract_expiry_days_ahead: int = 30
    # The calendar the business runs on (due dates, contract end dates); users have their own.
    business_timezone: str = "Asia/Shanghai"
    dispatch_batch_size: int = 500
    # Pools: how often the reclaim job runs, and how many customers one transaction moves.
    reclaim_interval_seconds: int = 600
    reclaim_batch_size: int = Field(default=5000, ge=1, le=30_000)
    # Customers in the recycle bin are purged after this many days (B8).
    recycle_bin_retention_days: int = 30
    # Analytics (Polars): threads per computation (read once at start as POLARS_MAX_THREADS),
    # computations at once, and how long a loaded frame is reused before its data version is
    # checked again (0: check on every request).
    analytics_threads: int = Field(default=min(os.cpu_count() or 1, 4), ge=1, le=64)
    analytics_workers: int = Field(default=1, ge=1, le=16)
    analytics_refresh_seconds: float = Field(default=30.0, ge=0, le=3600)
    # A frame whose data moved catches up by reading the changed rows; it is read whole again,
    # in the background, this often. Frames are kept on disk between runs and shared by the
    # workers in ``analytics_cache_dir`` (one directory per database; empty: memory only).
    analytics_full_reload_seconds: float = Field(default=3600.0, ge=60)
    analytics_cache_dir: Path | None = PROJECT_ROOT / "var" / "analytics"
    # Auto-tag rules are re-evaluated this often (SPEC H10).
    tag_rules_interval_seconds: int = Field(default=3600, ge=60)
    push_concurrency: int = 20
    push_max_attempts: int = 8
    # VAPID (RFC 8292). Without a key, one is generated on first start and kept in the database.
    vapid_private_key: str | None = None
    vapid_subject: str = "mailto:admin@kehu.invalid"
    # Push services are https; plain http only for local development and tests.
    push_allow_http: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    # FastAPI's OpenTelemetry spans, metrics and logs, for providers configured in the process
    # (e.g. by opentelemetry-instrument). Off: with it on, FastAPI asks for the providers on
    # every request, a twentieth of a customer detail (bench/RESULTS.md 2026-12-03 d).
    opentelemetry: bool = False
    db_pool_size: int = 10
    db_echo: bool = False

    @field_validator("analytics_cache_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


@lru_cache
def get_settings() -> Settings:
    return Settings()
