from tests.factories import auth, make_customer, make_org


async def test_rep_lists_own_customer(app, client, maker):
    org = await make_org(maker)
    mine = await make_customer(maker, org.rep_a)
    await make_customer(maker, org.rep_b)
    response = await client.get("/api/v1/customers", headers=auth(app, org.rep_a))
    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["items"]] == [mine.id]


async def test_routers_hang_off_the_app_directly(app):
    """FastAPI resolves included routers per request, walking every router below each level:
    the API's routers are included in the app itself, never nested (ADR 0013)."""
    included = [r.original_router for r in app.router.routes if hasattr(r, "original_router")]
    assert len(included) > 20
    for router in included:
        assert not any(hasattr(r, "original_router") for r in router.routes)
