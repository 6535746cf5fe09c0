"""Allocation's HTTP API: the pool, requests and decisions, allocations, utilisation, conflicts,
what-if and the PMO's experts, one router module each."""

from __future__ import annotations

from fastapi import APIRouter

from services.allocation.entrypoints import (
    allocations_api,
    conflicts_api,
    interventions_api,
    requests_api,
    resources_api,
    whatif_api,
)

router = APIRouter()
router.include_router(resources_api.router)
router.include_router(requests_api.router)
router.include_router(allocations_api.router)
router.include_router(conflicts_api.router)
router.include_router(whatif_api.router)
router.include_router(interventions_api.router)
