"""API tokens: what verifies, what does not, and the one-line 401 each refusal gets."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from fastapi import FastAPI

from shared.security import (
    Principal,
    Reader,
    TokenRejected,
    authenticate,
    issue_token,
    verify_token,
)
from shared.settings import Settings

pytestmark = pytest.mark.fast

SECRET = "unit-secret-" * 6  # long enough for HS512 too (the wrong-algorithm tokens)
SETTINGS = Settings(token_secret=SECRET, admin_token="bootstrap-admin")
CLAIMS = {"sub": "pm@example.com", "role": "pmo_admin"}


def _later(seconds: int = 3600) -> int:
    return int(time.time()) + seconds


def _altered_signature(token: str) -> str:
    head, signature = token.rsplit(".", 1)
    first = "B" if signature[0] == "A" else "A"
    return f"{head}.{first}{signature[1:]}"


def test_an_issued_token_is_an_hs256_jwt_for_its_subject_and_role() -> None:
    token = issue_token(SECRET, "pm@example.com", "project_manager")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert authenticate(SETTINGS, token) == Principal("pm@example.com", "project_manager")


def test_the_bootstrap_admin_token_is_an_administrator() -> None:
    assert authenticate(SETTINGS, "bootstrap-admin") == Principal("pmo-admin", "pmo_admin")


def test_an_unknown_role_cannot_be_issued() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(SECRET, "pm@example.com", "boss")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (issue_token("another-secret-another-secret-0123", "a@example.com", "viewer"), "signature"),
        (issue_token(SECRET, "pm@example.com", "viewer", ttl_seconds=-1), "expired"),
        (_altered_signature(issue_token(SECRET, "pm@example.com", "viewer")), "signature"),
        # Signed with our key, but with an algorithm we do not accept.
        (jwt.encode({**CLAIMS, "exp": _later()}, SECRET, algorithm="HS512"), "HS256"),
        # The classic forgery: an unsigned token that names the algorithm "none".
        (jwt.encode({**CLAIMS, "exp": _later()}, None, algorithm="none"), "HS256"),
        (jwt.encode(CLAIMS, SECRET, algorithm="HS256"), "'exp'"),
        (jwt.encode({**CLAIMS, "role": "owner", "exp": _later()}, SECRET), "role 'owner'"),
        ("pmo1.e30.abc", "garbled"),
        ("bootstrap-admin-guess", "garbled"),
        ("", "garbled"),
    ],
)
def test_a_forged_expired_or_garbled_token_is_refused_with_its_reason(
    token: str, reason: str
) -> None:
    assert authenticate(SETTINGS, token) is None
    with pytest.raises(TokenRejected, match=reason):
        verify_token(SETTINGS, token)


def test_a_role_elevated_in_the_claims_breaks_the_signature() -> None:
    header, _claims, signature = issue_token(SECRET, "v@example.com", "viewer").split(".")
    elevated = jwt.encode({"sub": "v@example.com", "role": "pmo_admin", "exp": _later()}, "x" * 32)
    forged = f"{header}.{elevated.split('.')[1]}.{signature}"
    with pytest.raises(TokenRejected, match="signature"):
        verify_token(SETTINGS, forged)


def test_without_a_secret_only_the_admin_token_verifies() -> None:
    settings = Settings(admin_token="bootstrap-admin")
    token = issue_token(SECRET, "pm@example.com", "viewer")
    with pytest.raises(TokenRejected, match="PMO_TOKEN_SECRET"):
        verify_token(settings, token)


def test_a_token_secret_shorter_than_the_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Settings(token_secret="short")


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (
            issue_token(SECRET, "pm@example.com", "viewer", ttl_seconds=-1),
            "The bearer token is not valid: it has expired; "
            "ask for a new one (`pmo token create`).",
        ),
        (
            issue_token("another-secret-another-secret-0123", "a@example.com", "viewer"),
            "The bearer token is not valid: its signature does not match (altered or another key).",
        ),
        (
            jwt.encode({**CLAIMS, "exp": _later()}, SECRET, algorithm="HS384"),
            "The bearer token is not valid: it is not signed with HS256.",
        ),
    ],
)
async def test_a_refused_token_is_a_401_with_a_one_line_reason(token: str, detail: str) -> None:
    app = FastAPI()
    app.state.settings = SETTINGS

    @app.get("/who")
    async def who(caller: Reader) -> str:
        return caller.subject

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        refused = await client.get("/who", headers={"Authorization": f"Bearer {token}"})
        accepted = await client.get(
            "/who", headers={"Authorization": f"Bearer {issue_token(SECRET, 'v@x.org', 'viewer')}"}
        )
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json() == {"detail": detail}
    assert "\n" not in detail
    assert accepted.json() == "v@x.org"


def test_a_project_manager_manages_only_their_own_projects() -> None:
    manager = Principal("Ada@Example.com", "project_manager")
    assert manager.may_manage("ada@example.com")
    assert not manager.may_manage("grace@example.com")
    assert not Principal("ada@example.com", "viewer").may_manage("ada@example.com")
    assert Principal("pmo-admin", "pmo_admin").may_manage("anyone@example.com")
