"""Who may call the HTTP APIs: bearer tokens mapped to the PMO's roles."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import Settings

Role = Literal["pmo_admin", "project_manager", "viewer"]

_bearer = HTTPBearer(auto_error=False, description="A PMO API token")


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role


def authenticate(settings: Settings, token: str) -> Principal | None:
    """The principal a token stands for, or None.

    The bootstrap administrator token comes from `PMO_ADMIN_TOKEN`; constant-time comparison so
    response times do not leak how much of a guess was right.
    """
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    if admin and secrets.compare_digest(token.encode(), admin.encode()):
        return Principal(subject="pmo-admin", role="pmo_admin")
    return None


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency admitting callers whose role is among `roles` (admins always)."""
    allowed = {"pmo_admin", *roles}

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "A bearer token is required: send 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = authenticate(request.app.state.settings, credentials.credentials)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "The bearer token is not valid.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"The role {principal.role!r} may not do this; it needs one of {sorted(allowed)}.",
            )
        return principal

    return dependency
