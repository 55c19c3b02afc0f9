"""Prometheus metrics (SPEC L3), served at ``/metrics`` in the text exposition format.

- ``kehu_http_request_duration_seconds{method, route, status}``: a histogram per route template
  (``/api/v1/customers/{customer_id}``, never the raw path, so the label set stays small);
  requests that match no route count under ``route="unmatched"``.
- ``kehu_job_runs_total{job, outcome}`` and ``kehu_job_duration_seconds{job}``: every run of a
  scheduler job, ``outcome`` ``ok`` or ``error``.
- ``kehu_reminders_total{outcome}``: the reminder dispatcher's results (``notified``, ``pushed``,
  ``retried``, ``failed``, ``gone``, ``missed``).
- ``kehu_webhook_deliveries_total{outcome}``: webhook attempts (``delivered``, ``failed``,
  ``gave_up``, ``disabled`` subscriptions) and events fanned out (``fanned_out``).

Several worker processes (``kehu serve --workers N``) each count their own requests; with
``PROMETHEUS_MULTIPROC_DIR`` set (``kehu serve`` sets it to a fresh directory when it starts
more than one worker) the counts go to files there and ``/metrics`` on any worker answers for
all of them (prometheus_client's multiprocess mode). This module has no web framework in it:
the middleware and the jobs call ``observe_*``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_DURATION = Histogram(
    "kehu_http_request_duration_seconds",
    "HTTP request duration by route template",
    ("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "kehu_job_runs", "Scheduler job runs by outcome", ("job", "outcome"), registry=REGISTRY
)
JOB_DURATION = Histogram(
    "kehu_job_duration_seconds",
    "Scheduler job run duration",
    ("job",),
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
    registry=REGISTRY,
)
REMINDERS = Counter(
    "kehu_reminders", "Reminder dispatch results by outcome", ("outcome",), registry=REGISTRY
)
WEBHOOKS = Counter(
    "kehu_webhook_deliveries",
    "Webhook deliveries and attempts by outcome",
    ("outcome",),
    registry=REGISTRY,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_DURATION.labels(method, route, str(status)).observe(seconds)


def count_outcomes(counter: Counter, outcomes: Any) -> None:
    """Add a dataclass of counts (``DispatchStats``, ``DispatchReport``) to ``counter``."""
    for name, value in vars(outcomes).items():
        if isinstance(value, int) and value:
            counter.labels(name).inc(value)


def timed_job(job_id: str, func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``func`` counted and timed as the scheduler job ``job_id``."""

    async def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await func(*args, **kwargs)
            outcome = "ok"
            return result
        finally:
            JOB_RUNS.labels(job_id, outcome).inc()
            JOB_DURATION.labels(job_id).observe(time.perf_counter() - started)

    run.__name__ = getattr(func, "__name__", job_id)
    run.__qualname__ = getattr(func, "__qualname__", job_id)
    return run


def exposition() -> bytes:
    """The metrics in Prometheus's text format: this process's, or with
    ``PROMETHEUS_MULTIPROC_DIR`` those of every worker process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
