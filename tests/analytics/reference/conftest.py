from __future__ import annotations

import pytest

from tests.factories import auth, make_org

from .data import Ledger, generate, insert_ledger


@pytest.fixture
async def org(maker):
    return await make_org(maker)


@pytest.fixture
def admin(app, org) -> dict[str, str]:
    return auth(app, org.admin)


@pytest.fixture
async def ledger(app, maker, org) -> Ledger:
    """~300 customers, 10 products, ~1,600 orders over 18 months, inserted as generated."""
    data = generate(org)
    await insert_ledger(maker, data)
    return data
