"""Customer analytics with Polars (SPEC H1–H10, DESIGN "Analytics").

Polars reads ``POLARS_MAX_THREADS`` once, when it is first imported: bound it here, before any
module imports Polars, from ``KEHU_ANALYTICS_THREADS`` (default: the cores, at most 4).
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "POLARS_MAX_THREADS",
    os.environ.get("KEHU_ANALYTICS_THREADS", str(min(os.cpu_count() or 1, 4))),
)
