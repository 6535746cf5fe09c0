"""The four services' HTTP APIs, called with the signed-in person's own token.

Forwarding the person's token (never a dashboard super-token) means every service applies its own
role rules to every page and action: the dashboard cannot show or do more than its caller may.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from shared.settings import Settings

Service = Literal["registry", "allocation", "monitoring", "notifications"]

# Reads of a whole portfolio ask several services at once; bounded so one page cannot flood them.
CONCURRENT_CALLS = 8


class ServiceError(Exception):
    """A service refused or could not answer; `message` is a one-line reason for a person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI's 422: name the fields
        return "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', ())[1:])}: {item.get('msg')}"
            for item in detail
            if isinstance(item, dict)
        )
    return str(detail) if detail is not None else response.reason_phrase


class ServicesApi:
    """One HTTP client for the four services; `close()` when done."""

    def __init__(self, settings: Settings, *, timeout_s: float = 15.0) -> None:
        self.base_urls: dict[Service, str] = {
            "registry": settings.dashboard_registry_url.rstrip("/"),
            "allocation": settings.dashboard_allocation_url.rstrip("/"),
            "monitoring": settings.dashboard_monitoring_url.rstrip("/"),
            "notifications": settings.dashboard_notifications_url.rstrip("/"),
        }
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._limit = asyncio.Semaphore(CONCURRENT_CALLS)

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        service: Service,
        method: str,
        path: str,
        token: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The JSON answer of `method path` on `service`.

        Raises ServiceError with the service's own reason on a 4xx/5xx, or with "unreachable"
        when the service does not answer (status 503).
        """
        response = await self._send(service, method, path, token, params=params, json=json)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def text(self, service: Service, path: str, token: str, **params: Any) -> str:
        """The text answer of `GET path` on `service` (e.g. an HTML page); errors as `call`."""
        return (await self._send(service, "GET", path, token, params=params)).text

    async def _send(
        self, service: Service, method: str, path: str, token: str, **body: Any
    ) -> httpx.Response:
        """The answer of `method path` (`body`: `params` and `json`); errors as `call`."""
        url = f"{self.base_urls[service]}{path}"
        params: Mapping[str, Any] = body.get("params") or {}
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        async with self._limit:
            try:
                response = await self._client.request(
                    method,
                    url,
                    params=clean,
                    json=body.get("json"),
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.HTTPError as error:
                raise ServiceError(
                    503, f"The {service} service does not answer ({type(error).__name__})."
                ) from error
        if response.status_code >= 400:
            raise ServiceError(response.status_code, f"{service}: {_detail(response)}")
        return response

    async def get(self, service: Service, path: str, token: str, **params: Any) -> Any:
        return await self.call(service, "GET", path, token, params=params)

    async def get_or_none(self, service: Service, path: str, token: str, **params: Any) -> Any:
        """Like `get`, but None where the service has nothing (404), e.g. no report yet."""
        try:
            return await self.get(service, path, token, **params)
        except ServiceError as error:
            if error.status == 404:
                return None
            raise

    async def metrics_text(self, service: Service) -> str:
        """The Prometheus text a service serves on /metrics (no token needed)."""
        try:
            response = await self._client.get(f"{self.base_urls[service]}/metrics")
        except httpx.HTTPError as error:
            raise ServiceError(
                503, f"The {service} service does not answer ({type(error).__name__})."
            ) from error
        return response.text

    async def all_projects(self, token: str, **filters: Any) -> list[dict[str, Any]]:
        """Every registered project matching `filters`, all pages of the registry's list."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.get(
                "registry", "/projects", token, limit=500, cursor=cursor, **filters
            )
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def all_health(self, token: str, **filters: Any) -> dict[str, dict[str, Any]]:
        """Monitoring's latest assessment of every project matching `filters`, by project id:
        one call per 500 projects (monitoring's `GET /health`, all pages)."""
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        while True:
            page = await self.get(
                "monitoring", "/health", token, limit=500, cursor=cursor, **filters
            )
            found.update({str(item["project_id"]): item for item in page["items"]})
            cursor = page.get("next_cursor")
            if not cursor:
                return found
