"""The SPA is served at /: client-side routes deep-link to index.html, the API's paths never do."""

from __future__ import annotations

from pathlib import Path

from httpx import ASGITransport, AsyncClient

from app.main import create_app


async def test_client_routes_get_the_app_and_api_paths_do_not(settings, tmp_path: Path):
    (tmp_path / "index.html").write_text("<!doctype html><title>Kehu</title>", encoding="utf-8")
    app = create_app(settings.model_copy(update={"spa_dir": tmp_path}))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://spa") as client:
        for path in ("/", "/customers/12", "/api-keys", "/apidocs/x", "/integrations/webhooks/3"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert "<title>Kehu</title>" in response.text, path
        for path in ("/api", "/api/v1/nothing-here"):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "<title>Kehu</title>" not in response.text, path
    await app.state.engine.dispose()


async def test_a_wrong_method_on_an_api_path_is_the_apis_405(settings, tmp_path: Path):
    """The SPA's mount took every request the API router matched only by path (found by
    Schemathesis): POST-only routes answered `405 Allow: GET, HEAD`, the static files' methods."""
    (tmp_path / "index.html").write_text("<!doctype html><title>Kehu</title>", encoding="utf-8")
    app = create_app(settings.model_copy(update={"spa_dir": tmp_path}))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://spa") as client:
        response = await client.request("OPTIONS", "/api/v1/api-keys/7/revoke")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert response.headers["content-type"] == "application/problem+json"
        assert (await client.get("/api/v1/openapi.json")).status_code == 200
    await app.state.engine.dispose()
