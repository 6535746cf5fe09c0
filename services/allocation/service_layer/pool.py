"""Changing the resource pool (API and CSV import alike), each change asking for re-resolution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.allocation.adapters.repository import change_kind
from services.allocation.adapters.tables import CapacityChangeRow, ResourceRequestRow, ResourceRow
from services.allocation.domain.pool import (
    CapacityChange,
    PoolEntry,
    capacity_by_week,
    normalised_skills,
)
from services.allocation.service_layer.resolution import request_resolution


class ResourceExists(Exception):
    """A resource id that is already in the pool."""


class UnknownResource(LookupError):
    """A resource id that is not in the pool."""


@dataclass(frozen=True)
class ResourceChange:
    """What to change on a resource; None leaves a field as it is."""

    name: str | None = None
    skills: Sequence[str] | None = None
    capacity_fte: float | None = None
    capacity_changes: Sequence[CapacityChange] | None = None
    """Replaces the resource's dated capacity changes."""


async def _requested_weeks(session: AsyncSession) -> set[str]:
    rows = await session.exec(select(ResourceRequestRow.weeks))
    return {week for weeks in rows.all() for week in weeks}


async def _changes_of(session: AsyncSession, resource_id: str) -> list[CapacityChange]:
    rows = await session.exec(
        select(CapacityChangeRow)
        .where(CapacityChangeRow.resource_id == resource_id)
        .order_by(col(CapacityChangeRow.id))
    )
    return [
        CapacityChange(
            starts=r.starts,
            ends=r.ends,
            capacity_fte=r.capacity_fte,
            reason=r.reason,
            kind=change_kind(r.kind),
        )
        for r in rows.all()
    ]


async def _store_changes(
    session: AsyncSession, resource_id: str, changes: Sequence[CapacityChange]
) -> None:
    await session.exec(
        delete(CapacityChangeRow).where(col(CapacityChangeRow.resource_id) == resource_id)
    )
    for change in changes:
        session.add(
            CapacityChangeRow(
                resource_id=resource_id,
                starts=change.starts,
                ends=change.ends,
                capacity_fte=change.capacity_fte,
                reason=change.reason,
                kind=change.effective_kind,
            )
        )


async def add_resource(
    session: AsyncSession,
    *,
    resource_id: str,
    name: str,
    skills: Sequence[str],
    capacity_fte: float,
    capacity_changes: Sequence[CapacityChange] = (),
) -> ResourceRow:
    """Put a new person or team in the pool; the weeks they could serve are re-solved."""
    if await session.get(ResourceRow, resource_id) is not None:
        raise ResourceExists(resource_id)
    resource = ResourceRow(
        resource_id=resource_id,
        name=name,
        skills=normalised_skills(skills),
        capacity_fte=capacity_fte,
    )
    session.add(resource)
    await session.flush()
    await _store_changes(session, resource_id, capacity_changes)
    await request_resolution(
        session, f"{resource_id} joined the pool", await _requested_weeks(session)
    )
    return resource


async def change_resource(
    session: AsyncSession, resource_id: str, change: ResourceChange
) -> ResourceRow:
    """Change a resource; only the weeks whose capacity or eligibility changed are re-solved."""
    resource = await session.get(ResourceRow, resource_id, with_for_update=True)
    if resource is None:
        raise UnknownResource(resource_id)
    old_changes = await _changes_of(session, resource_id)
    new_changes = (
        list(change.capacity_changes) if change.capacity_changes is not None else old_changes
    )
    new_capacity = change.capacity_fte if change.capacity_fte is not None else resource.capacity_fte
    new_skills = normalised_skills(change.skills) if change.skills is not None else resource.skills
    weeks = await _requested_weeks(session)
    before = capacity_by_week(resource.capacity_fte, old_changes, weeks)
    after = capacity_by_week(new_capacity, new_changes, weeks)
    affected = {week for week in weeks if abs(before[week] - after[week]) > 1e-9}
    causes = []
    if affected:
        causes.append(f"capacity of {resource_id} changed")
    if [s.casefold() for s in new_skills] != [s.casefold() for s in resource.skills]:
        affected = weeks  # whom they may serve changed: every requested week may differ
        causes.append(f"skills of {resource_id} changed to {', '.join(new_skills)}")
    if change.name is not None:
        resource.name = change.name
    resource.skills, resource.capacity_fte = list(new_skills), new_capacity
    resource.updated_at = datetime.now(UTC)
    session.add(resource)
    if change.capacity_changes is not None:
        await _store_changes(session, resource_id, new_changes)
    if causes:
        await request_resolution(session, "; ".join(causes), affected)
    return resource


@dataclass(frozen=True)
class ImportSummary:
    added: int
    updated: int
    unchanged: int
    of: str = "resources"
    """What was counted: resources, or the capacity changes of resources."""

    def __str__(self) -> str:
        if self.of == "resources":
            return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged"
        return (
            f"capacity changes of {self.updated} resource(s) replaced, {self.unchanged} unchanged"
        )


async def import_pool(session: AsyncSession, entries: Sequence[PoolEntry]) -> ImportSummary:
    """Add or update every entry (dated capacity changes are kept), then ask for re-resolution."""
    added = updated = unchanged = 0
    for entry in entries:
        resource = await session.get(ResourceRow, entry.resource_id, with_for_update=True)
        if resource is None:
            session.add(
                ResourceRow(
                    resource_id=entry.resource_id,
                    name=entry.name,
                    skills=list(entry.skills),
                    capacity_fte=entry.capacity_fte,
                    specialties=list(entry.specialties or ()),
                )
            )
            added += 1
        elif (resource.name, list(resource.skills), resource.capacity_fte) == (
            entry.name,
            list(entry.skills),
            entry.capacity_fte,
        ) and (entry.specialties is None or list(entry.specialties) == resource.specialties):
            unchanged += 1
        else:
            resource.name, resource.skills = entry.name, list(entry.skills)
            resource.capacity_fte = entry.capacity_fte
            if entry.specialties is not None:
                resource.specialties = list(entry.specialties)
            resource.updated_at = datetime.now(UTC)
            session.add(resource)
            updated += 1
    if added or updated:
        await request_resolution(
            session,
            f"resource pool imported from CSV ({added} added, {updated} updated)",
            await _requested_weeks(session),
        )
    return ImportSummary(added=added, updated=updated, unchanged=unchanged)


class UnknownResources(LookupError):
    """Resource ids a capacity file names that are not in the pool."""

    def __init__(self, resource_ids: Sequence[str]) -> None:
        super().__init__(", ".join(resource_ids))
        self.resource_ids = list(resource_ids)


async def import_capacity_changes(
    session: AsyncSession, changes: Mapping[str, Sequence[CapacityChange]]
) -> ImportSummary:
    """Replace the dated capacity changes of each resource the file names (all or none).

    The file is each named resource's whole list, so importing it again changes nothing and a
    change left out of it is removed. Resources it does not name keep theirs. Only the weeks
    whose capacity changed are re-solved. Raises UnknownResources when it names resources not
    in the pool (nothing is changed then).
    """
    resources = {
        resource.resource_id: resource
        for resource in (
            await session.exec(
                select(ResourceRow)
                .where(col(ResourceRow.resource_id).in_(list(changes)))
                .with_for_update()
            )
        ).all()
    }
    unknown = sorted(set(changes) - set(resources))
    if unknown:
        raise UnknownResources(unknown)
    weeks = await _requested_weeks(session)
    affected: set[str] = set()
    updated = unchanged = 0
    for resource_id, new in changes.items():
        old = await _changes_of(session, resource_id)
        if old == list(new):
            unchanged += 1
            continue
        base = resources[resource_id].capacity_fte
        before, after = capacity_by_week(base, old, weeks), capacity_by_week(base, new, weeks)
        affected |= {week for week in weeks if abs(before[week] - after[week]) > 1e-9}
        await _store_changes(session, resource_id, new)
        updated += 1
    if affected:
        await request_resolution(
            session, f"capacity changes imported from CSV ({updated} resources)", affected
        )
    return ImportSummary(added=0, updated=updated, unchanged=unchanged, of="capacity changes")
