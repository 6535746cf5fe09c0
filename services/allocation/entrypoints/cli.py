"""`pmo resources ...`: the resource pool from the command line (bulk import of CSV files).

Mounted in pmo/cli.py as `app.add_typer(resources_app, name="resources",
context_settings={"obj": _settings})`; the `obj` (a Settings or a function returning one) lets
the import use the same configuration as every other `pmo` command, the environment otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shared.settings import ConfigurationError, Settings, load_settings

if TYPE_CHECKING:
    from services.allocation.service_layer.pool import ImportSummary

resources_app = typer.Typer(no_args_is_help=True, add_completion=False)


@resources_app.callback()
def resources() -> None:
    """The allocation's resource pool: people and teams, skills, capacity."""
    # A callback keeps `import` a sub-command, standalone as when mounted under `pmo`.


class PoolImportRefused(Exception):
    """The file has problems; nothing was imported. `problems` names each line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing imported")
        self.problems = problems


async def import_resources_csv(settings: Settings, text: str) -> ImportSummary:
    """Import a pool CSV, or a capacity-changes CSV, into the configured database, all lines or
    none.

    A file whose header names `starts` lists dated capacity changes (see
    `parse_capacity_csv`); any other is the pool itself (see `parse_pool_csv`). Like a change
    through the API, it asks the running allocation service to re-solve (a pending
    re-resolution plus NOTIFY), so the new capacity is used within seconds. Raises
    PoolImportRefused naming every problem.
    """
    # Imported here, not at the top: every `pmo` command (each service's `pmo run` among them)
    # loads this module, and the allocation's service layer brings its solver's libraries.
    from services.allocation.domain.pool import (
        is_capacity_csv,
        parse_capacity_csv,
        parse_pool_csv,
    )
    from services.allocation.service_layer.pool import (
        UnknownResources,
        import_capacity_changes,
        import_pool,
    )
    from services.allocation.service_layer.resolution import hold_resolution_lock
    from shared.database import create_engine, migrate, session_factory

    capacity = is_capacity_csv(text)
    if capacity:
        changes, problems = parse_capacity_csv(text)
    else:
        entries, problems = parse_pool_csv(text)
    if problems:
        raise PoolImportRefused(problems)
    engine = create_engine(
        settings.database_url_for("allocation"),
        "allocation",
        pool_size=1,
        application="pmo-resources-import",
    )
    try:
        await migrate(engine, "allocation")
        async with session_factory(engine)() as session, session.begin():
            await hold_resolution_lock(session)
            if not capacity:
                return await import_pool(session, entries)
            try:
                return await import_capacity_changes(session, changes)
            except UnknownResources as unknown:
                raise PoolImportRefused(
                    [
                        f"not in the resource pool: {unknown}; import the pool (or add them "
                        "with POST /resources) first"
                    ]
                ) from None
    finally:
        await engine.dispose()


def _settings(context: typer.Context) -> Settings:
    provided: Settings | Callable[[], Settings] | None = context.obj
    if isinstance(provided, Settings):
        return provided
    if callable(provided):
        return provided()
    return load_settings()


@resources_app.command("import")
def import_command(
    context: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="The pool: CSV with the header resource_id,name,skills,capacity_fte; skills "
            "separated by ';' (e.g. ada,Ada Lovelace,architect;python,1), and optionally "
            "specialties: the PMO expert specialties, separated by ';' (e.g. "
            "schedule-recovery;cost-control). Or dated capacity "
            "changes: resource_id,starts,ends,capacity_fte,kind,reason (kind absence or "
            "contract; ends, kind, reason optional), replacing those resources' changes",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
) -> None:
    """Add or update the pool's people and teams, or their dated capacity changes, from a CSV
    file (all lines or none)."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        typer.echo(f"{file}: not UTF-8 text ({error}); nothing imported", err=True)
        raise typer.Exit(1) from error
    try:
        summary = asyncio.run(import_resources_csv(_settings(context), text))
    except PoolImportRefused as refused:
        for problem in refused.problems:
            typer.echo(f"{file}: {problem}", err=True)
        typer.echo(f"{file}: {refused}", err=True)
        raise typer.Exit(1) from refused
    except ConfigurationError as error:
        typer.echo(f"pmo resources import: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"{file}: {summary}; allocations are re-solved by the allocation service")
