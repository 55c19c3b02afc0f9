"""Login, tokens, refresh rotation, logout, throttling (SPEC A2)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from sqlalchemy import func, select

from app.models import LoginAttempt, RefreshToken
from app.security import create_access_token
from tests.factories import PASSWORD, auth, make_org


async def login(client, username, password=PASSWORD, ip=None):
    return await client.post(
        "/api/v1/auth/token", data={"username": username, "password": password}
    )


async def test_login_returns_access_and_refresh_tokens(app, client, maker):
    org = await make_org(maker)
    response = await login(client, "rep_a")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    claims = jwt.decode(
        body["access_token"],
        app.state.token_settings.secret,
        algorithms=["HS256"],
        audience="kehu-api",
    )
    assert claims["sub"] == str(org.rep_a.id) and claims["iss"] == "kehu"
    assert claims["exp"] - claims["iat"] == 15 * 60
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "rep_a"


async def test_login_is_case_insensitive_on_username(client, maker):
    await make_org(maker)
    assert (await login(client, "  REP_A ")).status_code == 200


async def test_wrong_password_and_unknown_user_get_the_same_answer(client, maker):
    await make_org(maker)
    wrong = await login(client, "rep_a", "not the password")
    unknown = await login(client, "nobody_here", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    strip = lambda r: {k: v for k, v in r.json().items() if k != "instance"}  # noqa: E731
    assert strip(wrong) == strip(unknown)


async def test_sixth_failed_login_within_a_minute_is_throttled(client, maker, db):
    await make_org(maker)
    for _ in range(5):
        assert (await login(client, "rep_a", "bad password")).status_code == 401
    throttled = await login(client, "rep_a", PASSWORD)  # even the right password waits
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.json()["type"].endswith("/too-many-requests")
    # counted in the database, so every worker process sees it
    assert await db.scalar(select(func.count()).select_from(LoginAttempt)) == 5


async def test_throttle_counts_per_account(client, maker):
    await make_org(maker)
    for _ in range(5):
        await login(client, "rep_a", "bad password")
    assert (await login(client, "rep_b")).status_code == 200


async def test_throttle_window_expires(client, maker, db):
    await make_org(maker)
    for _ in range(5):
        await login(client, "rep_a", "bad password")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=61)
    for attempt in (await db.scalars(select(LoginAttempt))).all():
        attempt.at = old
    await db.commit()
    assert (await login(client, "rep_a")).status_code == 200


async def test_inactive_user_cannot_log_in(client, maker, db):
    org = await make_org(maker)
    user = await db.get(type(org.rep_a), org.rep_a.id)
    user.is_active = False
    await db.commit()
    assert (await login(client, "rep_a")).status_code == 401


async def test_refresh_rotates_the_token(client, maker):
    await make_org(maker)
    first = (await login(client, "rep_a")).json()
    second = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    third = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert third.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_chain(client, maker, db):
    await make_org(maker)
    first = (await login(client, "rep_a")).json()
    second = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    # the legitimate newest token died with the chain
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after.status_code == 401
    live = await db.scalar(
        select(func.count()).select_from(RefreshToken).where(RefreshToken.revoked_at.is_(None))
    )
    assert live == 0


async def test_logout_revokes_the_refresh_token(client, maker):
    await make_org(maker)
    tokens = (await login(client, "rep_a")).json()
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    again = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401


async def test_refresh_rejects_unknown_token_and_bad_body(client, maker):
    await make_org(maker)
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
    ).status_code == 401
    bad = await client.post("/api/v1/auth/refresh", json={"refresh_token": "x", "extra": 1})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "extra"]


async def test_me_shows_roles_permissions_and_scopes(app, client, maker):
    org = await make_org(maker)
    body = (await client.get("/api/v1/me", headers=auth(app, org.mgr_east))).json()
    assert body["roles"] == [{"id": org.roles["manager"].id, "name": "manager"}]
    assert body["scopes"] == {"customer": "department_and_children"}
    assert "customer.delete" in body["permissions"] and body["is_admin"] is False
    assert body["department_name"] == "East"
    assert "password_hash" not in body


def _forge(app, **overrides):
    settings = app.state.token_settings
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": "1",
        "iss": settings.issuer,
        "aud": settings.audience,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + dt.timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, settings.secret, algorithm="HS256")


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "no_exp",
        "tampered",
        "alg_none",
        "other_key",
        "garbage",
        "refresh_as_access",
    ],
)
async def test_bad_tokens_get_401(app, client, maker, case):
    org = await make_org(maker)
    sub = str(org.rep_a.id)
    now = dt.datetime.now(dt.UTC)
    if case == "expired":
        token = _forge(app, sub=sub, exp=int((now - dt.timedelta(seconds=5)).timestamp()))
    elif case == "wrong_audience":
        token = _forge(app, sub=sub, aud="someone-else")
    elif case == "wrong_issuer":
        token = _forge(app, sub=sub, iss="evil")
    elif case == "no_exp":
        token = _forge(app, sub=sub, exp=None)
    elif case == "tampered":
        good = create_access_token(app.state.token_settings, org.rep_a.id)
        header, payload, signature = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["sub"] = str(org.admin.id)
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        token = f"{header}.{forged}.{signature}"
    elif case == "alg_none":
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
        payload = (
            base64.urlsafe_b64encode(
                json.dumps(
                    {
                        "sub": sub,
                        "iss": "kehu",
                        "aud": "kehu-api",
                        "iat": int(now.timestamp()),
                        "exp": int(now.timestamp()) + 300,
                        "typ": "access",
                    }
                ).encode()
            )
            .decode()
            .rstrip("=")
        )
        token = f"{header}.{payload}."
    elif case == "other_key":
        token = jwt.encode(
            {
                "sub": sub,
                "iss": "kehu",
                "aud": "kehu-api",
                "typ": "access",
                "iat": int(now.timestamp()),
                "exp": int(now.timestamp()) + 300,
            },
            "another-secret-key-that-is-long-enough-000",
            algorithm="HS256",
        )
    elif case == "garbage":
        token = "not-a-jwt"
    else:
        token = _forge(app, sub=sub, typ="refresh")
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, case
    assert response.json()["type"].endswith("/unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_missing_token_gets_401(client):
    response = await client.get("/api/v1/customers")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
