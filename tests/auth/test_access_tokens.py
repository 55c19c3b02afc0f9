"""Access-token verification: checked in full once per token, then only for expiry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from types import SimpleNamespace

import pytest

from app import security
from app.security import InvalidToken, TokenSettings, create_access_token, decode_access_token

SETTINGS = TokenSettings(
    secret="s" * 48,
    issuer="kehu",
    audience="kehu-api",
    access_ttl=dt.timedelta(minutes=5),
    refresh_ttl=dt.timedelta(days=1),
)


def test_a_remembered_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = create_access_token(SETTINGS, 42)
    assert decode_access_token(SETTINGS, token)["sub"] == "42"
    assert (SETTINGS, token) in security._verified  # the second use is a look-up

    later = time.time() + 5 * 60 + 1
    monkeypatch.setattr(security, "time", SimpleNamespace(time=lambda: later))
    with pytest.raises(InvalidToken, match="expired"):
        decode_access_token(SETTINGS, token)


def test_a_remembered_token_is_not_valid_under_another_secret() -> None:
    token = create_access_token(SETTINGS, 42)
    decode_access_token(SETTINGS, token)
    rotated = dataclasses.replace(SETTINGS, secret="t" * 48)
    with pytest.raises(InvalidToken, match="Signature verification failed"):
        decode_access_token(rotated, token)


def test_invalid_tokens_are_not_remembered() -> None:
    token = create_access_token(SETTINGS, 42)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[::-1]}"
    for _ in range(2):
        with pytest.raises(InvalidToken):
            decode_access_token(SETTINGS, tampered)
    assert (SETTINGS, tampered) not in security._verified


def test_callers_cannot_change_the_remembered_claims() -> None:
    token = create_access_token(SETTINGS, 42)
    decode_access_token(SETTINGS, token)["sub"] = "1"
    assert decode_access_token(SETTINGS, token)["sub"] == "42"


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_VERIFIED_MAX", 3)
    monkeypatch.setattr(security, "_verified", {})
    tokens = [create_access_token(SETTINGS, user) for user in range(5)]
    for token in tokens:
        decode_access_token(SETTINGS, token)
    assert [t for _, t in security._verified] == tokens[2:]
