"""Who may call the HTTP APIs: signed bearer tokens carrying one of the PMO's roles.

A token is a JWT (RFC 7519, PyJWT) signed with HS256 and `PMO_TOKEN_SECRET`, with the claims `sub`,
`role` and `exp`. Every service verifies a token with the shared secret alone, so no service needs
another's tables to know who is calling.
`pmo token create` issues them; `PMO_ADMIN_TOKEN` is the bootstrap administrator's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import Settings

Role = Literal["pmo_admin", "project_manager", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)
TOKEN_ALGORITHM = "HS256"
"""The one signing algorithm issued and accepted (HMAC-SHA256 with PMO_TOKEN_SECRET)."""

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


class TokenRejected(ValueError):
    """A bearer token that does not stand for anyone; the message is one line saying why."""


def issue_token(secret: str, subject: str, role: Role, *, ttl_seconds: int = 90 * 86400) -> str:
    """A JWT (HS256 with `secret`) for `subject` with `role`, valid for `ttl_seconds` seconds.

    Raises ValueError for a role outside ROLES.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    claims = {"sub": subject, "role": role, "exp": int(time.time()) + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def verify_token(settings: Settings, token: str) -> Principal:
    """The principal a token stands for: the bootstrap admin token, or a JWT we signed.

    Only HS256 is accepted (never `none`, never another algorithm named in the token's header),
    and `sub`, `role` and `exp` are required. Raises TokenRejected with a one-line reason for an
    unknown, expired, altered, wrongly signed or garbled token. The admin token comparison is
    constant-time so response times do not leak how close a guess was (PyJWT's is too).
    """
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    if admin and secrets.compare_digest(token.encode(), admin.encode()):
        return Principal(subject="pmo-admin", role="pmo_admin")
    secret = settings.token_secret.get_secret_value() if settings.token_secret else None
    if not secret:
        raise TokenRejected("it is not the admin token and no PMO_TOKEN_SECRET is set to check it")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            options={"require": ["sub", "role", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected("it has expired; ask for a new one (`pmo token create`)") from None
    except jwt.InvalidAlgorithmError:
        raise TokenRejected(f"it is not signed with {TOKEN_ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("its signature does not match (altered or another key)") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(f"it lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError:
        raise TokenRejected("it is not a token this PMO issued (garbled or unknown)") from None
    role = claims["role"]
    if role not in ROLES:
        raise TokenRejected(f"its role {role!r} is not one of {', '.join(ROLES)}")
    return Principal(subject=str(claims["sub"]), role=role)


def authenticate(settings: Settings, token: str) -> Principal | None:
    """The principal a token stands for, or None if it is not valid (see `verify_token`)."""
    try:
        return verify_token(settings, token)
    except TokenRejected:
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
        try:
            principal = verify_token(request.app.state.settings, credentials.credentials)
        except TokenRejected as rejected:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"The bearer token is not valid: {rejected}.",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
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
