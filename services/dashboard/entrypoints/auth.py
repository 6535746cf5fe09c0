"""Signing in to the dashboard: a PMO token exchanged for a short-lived session, and CSRF tokens.

The session cookie (Starlette's signed cookie, HttpOnly, SameSite=Strict, Secure behind https)
holds a token the dashboard issues itself for the same subject and role, valid for
`PMO_DASHBOARD_SESSION_HOURS`, never the token typed in (the admin token does not expire). Every
request verifies it again, so an expired or forged session is simply signed out. Every form
carries the session's CSRF token, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request

from shared.security import Principal, Role, authenticate, issue_token
from shared.settings import ConfigurationError, Settings

SESSION_COOKIE = "pmo_dashboard"
CSRF_FIELD = "csrf_token"

ROLE_NAMES: dict[Role, str] = {
    "pmo_admin": "PMO administrator",
    "project_manager": "project manager",
    "viewer": "viewer",
}


class SignInRequired(Exception):
    """No valid session: pages send the person to the sign-in page."""


class Refused(Exception):
    """The person may not do this (403) or the form is not genuine; `message` says why."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SignedIn:
    """The person using the dashboard, and the token the services see on their behalf."""

    principal: Principal
    token: str

    @property
    def is_admin(self) -> bool:
        return self.principal.role == "pmo_admin"

    @property
    def role_name(self) -> str:
        return ROLE_NAMES[self.principal.role]

    def may_manage(self, manager: str | None) -> bool:
        return self.principal.may_manage(manager)


def session_key(settings: Settings) -> str:
    """The key signing session cookies, derived from the token secret (one secret to manage)."""
    if settings.token_secret is None:
        raise ConfigurationError(
            "The dashboard needs PMO_TOKEN_SECRET (the same in every service) to sign sessions."
        )
    secret = settings.token_secret.get_secret_value().encode()
    return hmac.new(secret, b"pmo-dashboard-session", hashlib.sha256).hexdigest()


def sign_in(request: Request, settings: Settings, token: str) -> Principal | None:
    """Start a session for `token`; None (and no session) if the token is not valid."""
    principal = authenticate(settings, token.strip())
    if principal is None:
        return None
    assert settings.token_secret is not None  # session_key() refused to start without it
    ttl = int(settings.dashboard_session_hours * 3600)
    request.session.clear()
    request.session["token"] = issue_token(
        settings.token_secret.get_secret_value(), principal.subject, principal.role, ttl_seconds=ttl
    )
    # A new CSRF token with each sign-in: one seen before signing in is worth nothing after.
    request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return principal


def sign_out(request: Request) -> None:
    request.session.clear()


def signed_in(request: Request) -> SignedIn | None:
    token = request.session.get("token")
    if not isinstance(token, str):
        return None
    principal = authenticate(request.app.state.settings, token)
    return SignedIn(principal, token) if principal is not None else None


def require_signed_in(request: Request) -> SignedIn:
    """The signed-in person, or SignInRequired."""
    user = signed_in(request)
    if user is None:
        raise SignInRequired()
    return user


def require_admin(request: Request) -> SignedIn:
    user = require_signed_in(request)
    if not user.is_admin:
        raise Refused(
            f"This needs the PMO administrator role; you are signed in as {user.role_name} "
            f"({user.principal.subject})."
        )
    return user


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the sign-in form needs one too)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a form whose CSRF token is not this session's (forged, or from an old session)."""
    expected = request.session.get(CSRF_FIELD)
    if (
        not isinstance(expected, str)
        or not submitted
        or not secrets.compare_digest(expected.encode(), submitted.encode())
    ):
        raise Refused(
            "This form did not come from your current dashboard session (CSRF check); "
            "reload the page and try again."
        )
