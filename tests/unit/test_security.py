"""API tokens: what verifies, and what does not."""

from __future__ import annotations

import pytest

from shared.security import Principal, authenticate, issue_token
from shared.settings import Settings

SECRET = "unit-secret"
SETTINGS = Settings(token_secret=SECRET, admin_token="bootstrap-admin")


def test_an_issued_token_stands_for_its_subject_and_role() -> None:
    token = issue_token(SECRET, "pm@example.com", "project_manager")
    assert authenticate(SETTINGS, token) == Principal("pm@example.com", "project_manager")


def test_the_bootstrap_admin_token_is_an_administrator() -> None:
    assert authenticate(SETTINGS, "bootstrap-admin") == Principal("pmo-admin", "pmo_admin")


@pytest.mark.parametrize(
    "token",
    [
        issue_token("another-secret", "pm@example.com", "pmo_admin"),  # signed with another key
        issue_token(SECRET, "pm@example.com", "viewer", ttl_seconds=-1),  # expired
        issue_token(SECRET, "pm@example.com", "viewer")[:-2] + "xx",  # signature altered
        "pmo1.e30.abc",  # garbled claims
        "bootstrap-admin-guess",
        "",
    ],
)
def test_a_forged_expired_or_garbled_token_is_refused(token: str) -> None:
    assert authenticate(SETTINGS, token) is None


def test_a_role_elevated_in_the_claims_breaks_the_signature() -> None:
    import base64
    import json

    prefix, claims, signature = issue_token(SECRET, "v@example.com", "viewer").split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["role"] = "pmo_admin"
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    assert authenticate(SETTINGS, f"{prefix}.{forged}.{signature}") is None


def test_a_project_manager_manages_only_their_own_projects() -> None:
    manager = Principal("Ada@Example.com", "project_manager")
    assert manager.may_manage("ada@example.com")
    assert not manager.may_manage("grace@example.com")
    assert not Principal("ada@example.com", "viewer").may_manage("ada@example.com")
    assert Principal("pmo-admin", "pmo_admin").may_manage("anyone@example.com")
