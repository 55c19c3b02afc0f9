"""The raw comparison endpoint of bench/load.py: customer detail straight from asyncpg.

Starlette + one asyncpg pool per worker, ``GET /raw/customers/{id}?owner=<user id>``: the
customer row with its owner's name and its current tags, in the caller's scope (owned by
``owner``), as JSON — the queries the app's detail needs at the least, without the framework,
authentication, data-scope module, field levels or response models. Served by uvicorn with the
same number of workers as the app.

    .venv/bin/python bench/raw_detail.py --port 8100 --workers 1
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import uvicorn
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CUSTOMER = """
SELECT c.id, c.name, c.kind, c.phones, c.email, c.province, c.city, c.industry, c.source,
       c.level, c.owner_id, u.display_name AS owner_name, c.created_at, c.updated_at,
       c.last_follow_up_at, c.signed_at, c.custom_fields, c.version
FROM customers c LEFT JOIN users u ON u.id = c.owner_id
WHERE c.id = $1 AND c.owner_id = $2 AND c.deleted_at IS NULL
"""
TAGS = """
SELECT t.id, t.name, t.group_id FROM customer_tags ct JOIN tags t ON t.id = ct.tag_id
WHERE ct.customer_id = $1 AND ct.removed_at IS NULL
"""


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    url = make_url(os.environ["KEHU_DATABASE_URL"]).set(drivername="postgresql")
    app.state.pool = await asyncpg.create_pool(
        url.render_as_string(hide_password=False), min_size=2, max_size=10
    )
    yield
    await app.state.pool.close()


async def detail(request: Request) -> Response:
    customer_id = int(request.path_params["customer_id"])
    owner = int(request.query_params.get("owner", "0"))
    async with request.app.state.pool.acquire() as connection:
        row = await connection.fetchrow(CUSTOMER, customer_id, owner)
        if row is None:
            return JSONResponse({"status": 404}, status_code=404)
        tags = await connection.fetch(TAGS, customer_id)
    body: dict[str, Any] = dict(row)
    body["tags"] = [dict(t) for t in tags]
    return Response(
        json.dumps(body, default=str, ensure_ascii=False), media_type="application/json"
    )


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/raw/customers/{customer_id:int}", detail), Route("/healthz", healthz)],
    lifespan=lifespan,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "raw_detail:app",
        app_dir=os.path.dirname(os.path.abspath(__file__)),
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
