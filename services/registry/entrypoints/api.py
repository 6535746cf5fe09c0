"""The registry's HTTP API: projects, programs, the strategy-ranked portfolio and the reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from services.registry.entrypoints import (
    methodology_api,
    portfolio_api,
    programs_api,
    projects_api,
    reports_api,
)
from services.registry.service_layer.configuration import check


@asynccontextmanager
async def _configured(app: FastAPI) -> AsyncIterator[None]:
    check(app.state.runtime)
    yield


router = APIRouter(lifespan=_configured)
router.include_router(projects_api.router)
router.include_router(portfolio_api.router)
router.include_router(reports_api.router)
router.include_router(methodology_api.router)
router.include_router(programs_api.router)
