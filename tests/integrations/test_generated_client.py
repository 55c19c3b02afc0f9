"""A Python client generated from our OpenAPI document (openapi-python-client, in the test run,
never committed) runs an integration as a third party would: with an API key it creates
customers, posts orders in bulk (twice: idempotent), reads the funnel and a persona. Every
answer must parse into the documented model — the document is complete and correct for them."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import auth

PACKAGE = "kehu_generated_client"
# Run in an environment of its own (uv tool run): its dependency pins must not move ours.
GENERATOR = "openapi-python-client==0.29.1"
SCOPES = [
    "customers:read",
    "customers:write",
    "orders:read",
    "orders:write",
    "opportunities:read",
    "opportunities:write",
    "analytics:read",
]


@pytest.fixture
def generated(app: Any, tmp_path: Path) -> Any:
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(app.openapi()), encoding="utf-8")
    tools = Path(sys.executable).parent
    subprocess.run(  # noqa: S603 (our own tool on our own document)
        [
            str(tools / "uv"),
            "tool",
            "run",
            "--from",
            GENERATOR,
            "openapi-python-client",
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(tmp_path / PACKAGE),
            "--meta",
            "none",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=300,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


async def test_an_integration_through_the_generated_client(app, client, org, generated):
    made = await client.post(
        "/api/v1/api-keys", json={"name": "ERP", "scopes": SCOPES}, headers=auth(app, org.admin)
    )
    token = made.json()["token"]
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(
        transport=transport, base_url="http://kehu", headers={"Authorization": f"Bearer {token}"}
    )
    kehu = generated("client").AuthenticatedClient(base_url="http://kehu", token=token)
    kehu.set_async_httpx_client(http)
    models = generated("models")

    async def call(module: str, **kwargs: Any) -> Any:
        response = await generated(f"api.{module}").asyncio_detailed(client=kehu, **kwargs)
        assert response.status_code in (200, 201), (module, response.status_code, response.content)
        assert not isinstance(response.parsed, models.Problem), (module, response.parsed)
        assert response.parsed is not None, module
        return response.parsed

    customers = []
    for name, industry in (
        ("华东精密制造", "制造业"),
        ("滨江百货", "零售"),
        ("北岭机械", "制造业"),
    ):
        body = models.CustomerCreate.from_dict({"name": name, "industry": industry})
        created = await call("customers.create_customer", body=body)
        assert isinstance(created, models.CustomerOut) and created.name == name
        customers.append(created)
    product = await call(
        "opportunities.create_product",
        body=models.ProductCreate.from_dict(
            {"name": "年度服务", "sku": "SRV-1", "unit_price": "99.5"}
        ),
    )
    orders = models.OrderBulkIn.from_dict(
        {
            "orders": [
                {
                    "external_id": f"erp-{c.id}",
                    "customer_id": c.id,
                    "ordered_at": "2026-11-01T10:00:00+08:00",
                    "channel": "线上商城",
                    "lines": [{"product_id": product.id, "quantity": 2, "unit_price": "99.5"}],
                }
                for c in customers
            ]
        }
    )
    first = await call("orders.record_orders_in_bulk", body=orders)
    again = await call("orders.record_orders_in_bulk", body=orders)
    assert (first.created, first.existing) == (3, 0)
    assert (again.created, again.existing) == (0, 3)
    listed = await call("orders.list_orders")
    assert len(listed.items) == 3

    pipeline = models.PipelineCreate.from_dict(
        {
            "name": "直销",
            "is_default": True,
            "stages": [
                {"name": "初步接触", "probability": 10},
                {"name": "方案报价", "probability": 50},
                {"name": "赢单", "probability": 100, "kind": "won"},
                {"name": "输单", "probability": 0, "kind": "lost"},
            ],
        }
    )
    await call("opportunities.create_pipeline", body=pipeline)
    funnel = await call("funnel.get_funnel")
    assert isinstance(funnel, models.FunnelOut)
    persona = await call(
        "analytics.get_persona",
        dimension="industry",
        cohort_a="all",
        cohort_b="ordered",
        date_from=dt.date(2026, 1, 1),
        date_to=dt.date(2026, 11, 30),
    )
    sizes = {c.key: c.size for c in persona.cohorts}
    assert sizes == {"a": 3, "b": 3}
    assert {b.value: b.a.count for b in persona.buckets} == {"制造业": 2, "零售": 1}
    await http.aclose()
