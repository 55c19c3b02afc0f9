from fastapi.routing import APIRoute

from app.routers import customers, health, webhooks
from app.routers.common import ApiRouter
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


async def test_every_api_router_declines_paths_outside_its_first_segments(app):
    """Each API router is an ApiRouter: FastAPI would otherwise try every route of every router
    before a late one (ADR 0013)."""
    included = [r.original_router for r in app.router.routes if hasattr(r, "original_router")]
    api = [router for router in included if router is not health.router]
    assert api and all(isinstance(router, ApiRouter) for router in api)
    assert customers.router.heads() == frozenset({"customers"})
    assert ApiRouter(routes=[]).heads() == frozenset()
    wildcard = ApiRouter()

    @wildcard.get("/{anything}")
    async def _any(anything: str) -> str:
        return anything

    assert wildcard.heads() is None  # may match any path: always asked


async def test_a_late_route_is_reached_without_trying_the_others(app, client, maker, monkeypatch):
    org = await make_org(maker)
    tried: list[str] = []
    matches = APIRoute.matches

    def counting(route, scope):
        tried.append(route.path)
        return matches(route, scope)

    monkeypatch.setattr(APIRoute, "matches", counting)
    response = await client.get("/api/v1/webhooks", headers=auth(app, org.admin))
    assert response.status_code == 200, response.text
    # Only the routes of the router serving /webhooks were tried, of the whole API's.
    assert tried and set(tried) <= {route.path for route in webhooks.router.routes}, tried
    # The routers keep their order and their answers: a method a path lacks is still a 405
    # naming the methods it has, an unknown path a 404 problem.
    wrong = await client.delete("/api/v1/customers", headers=auth(app, org.admin))
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, POST"
    missing = await client.get("/api/v1/no-such-thing", headers=auth(app, org.admin))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
