from __future__ import annotations

import pytest

from tests.factories import make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)
