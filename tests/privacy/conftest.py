"""Personal-data test helpers: the organisation, and field levels set through the API."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import Role
from tests.factories import auth, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


async def set_levels(client: Any, app: Any, org: Any, role: Role, **levels: str) -> dict[str, Any]:
    """Give ``role`` these field levels (``contact.name`` is spelt ``contact__name``)."""
    url = f"/api/v1/roles/{role.id}/field-permissions"
    current = await client.get(url, headers=auth(app, org.admin))
    assert current.status_code == 200, current.text
    body = {"fields": {name.replace("__", "."): level for name, level in levels.items()}}
    response = await client.put(
        url, json=body, headers={**auth(app, org.admin), "If-Match": current.headers["ETag"]}
    )
    assert response.status_code == 200, response.text
    return response.json()
