"""Pools test helpers: an organisation and a pool made through the API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import auth, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def make_pool(client: Any, app: Any, org: Any, **overrides: Any) -> dict[str, Any]:
    """Pool "East" (members: department East with its children; admin mgr_east)."""
    body = {
        "name": "East pool",
        "rules": [{"kind": "no_follow_up", "days": 30}],
        "members": [
            {"role": "admin", "user_id": org.mgr_east.id},
            {"role": "member", "department_id": org.east.id},
        ],
        "hidden_fields": ["phones", "email", "contacts"],
        **overrides,
    }
    response = await client.post("/api/v1/pools", json=body, headers=auth(app, org.admin))
    assert response.status_code == 201, response.text
    return response.json()
