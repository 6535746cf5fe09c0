"""Who may call the HTTP APIs: signed bearer tokens carrying one of the PMO's roles.

A token is `pmo1.<claims>.<signature>`: the claims are base64url JSON (`sub`, `role`, `exp`), the
signature an HMAC-SHA256 over `pmo1.<claims>` with `PMO_TOKEN_SECRET`. Every service verifies a
token with the shared secret alone, so no service needs another's tables to know who is calling.
`pmo token create` issues them; `PMO_ADMIN_TOKEN` is the bootstrap administrator's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import Settings

Role = Literal["pmo_admin", "project_manager", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
TOKEN_PREFIX = "pmo1"

_bearer = HTTPBearer(auto_error=False, description="A PMO API token")


@dataclass(frozen=True)
class Principal:
    """The caller: `subject` is an e-mail for people (a project manager's is matched against
    the `manager` of the projects they may change)."""

    subject: str
    role: Role

    def may_manage(self, manager: str | None) -> bool:
        """Whether this caller may change a project run by `manager`."""
        if self.role == "pmo_admin":
            return True
        return (
            self.role == "project_manager"
            and manager is not None
            and self.subject.casefold() == manager.casefold()
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())


def issue_token(secret: str, subject: str, role: Role, *, ttl_seconds: int = 90 * 86400) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    claims = {"sub": subject, "role": role, "exp": int(time.time()) + ttl_seconds}
    payload = f"{TOKEN_PREFIX}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{payload}.{_sign(secret, payload)}"


def authenticate(settings: Settings, token: str) -> Principal | None:
    """The principal a token stands for, or None if it is not valid (forged, expired, garbled).

    Comparisons are constant-time so response times do not leak how close a guess was.
    """
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    if admin and secrets.compare_digest(token.encode(), admin.encode()):
        return Principal(subject="pmo-admin", role="pmo_admin")
    secret = settings.token_secret.get_secret_value() if settings.token_secret else None
    parts = token.split(".")
    if not secret or len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    payload = f"{parts[0]}.{parts[1]}"
    if not secrets.compare_digest(_sign(secret, payload).encode(), parts[2].encode()):
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
        subject, role, expires = str(claims["sub"]), claims["role"], int(claims["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    if role not in ROLES or expires < time.time():
        return None
    return Principal(subject=subject, role=role)


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
                "The bearer token is not valid (unknown, expired or altered).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"The role {principal.role!r} may not do this; it needs one of "
                f"{', '.join(sorted(allowed))}.",
            )
        return principal

    return dependency


Reader = Annotated[Principal, Depends(require_role("viewer", "project_manager"))]
"""A caller with any PMO role: every role may read."""
ProjectManager = Annotated[Principal, Depends(require_role("project_manager"))]
"""A project manager (for their own projects: check `may_manage`) or an administrator."""
Admin = Annotated[Principal, Depends(require_role())]
"""A PMO administrator."""
