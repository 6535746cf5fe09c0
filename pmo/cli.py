"""The `pmo` command: run the whole system on a laptop, one service in a container, or the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pmo.stack import DEMO_WEBHOOK_PORT, MAIN_LANE, STACK_FILE
from services.allocation.entrypoints.cli import resources_app
from shared.settings import (
    SERVICE_NAMES,
    ConfigurationError,
    ServiceName,
    Settings,
    load_settings,
)

if TYPE_CHECKING:  # imported by `run` only: the other commands start without it
    from shared.runtime import ServiceDefinition

# What a user can get wrong or find unreachable: said in one line, never as a traceback.
_UNREACHABLE_HINT = "is the system running (`pmo up`), and are its addresses configured?"
_SETTING_OF = {
    "broker": "PMO_KAFKA_BOOTSTRAP_SERVERS",
    "database": "PMO_DATABASE_URL",
    "either": "PMO_DATABASE_URL, PMO_KAFKA_BOOTSTRAP_SERVERS",
}


def _hint(part: str) -> str:
    return f"{_UNREACHABLE_HINT[:-1]} ({_SETTING_OF[part]})?"


app = typer.Typer(
    help="The PMO event backbone: registry, monitoring, allocation and notifications over Kafka.",
    no_args_is_help=True,
    add_completion=False,
)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _settings() -> Settings:
    """The settings from the environment; a running `pmo up` fills in the embedded addresses.

    Variables set in the environment win over the stack file.
    """
    stack = Path(os.environ.get("PMO_DATA_DIR", ".pmo")) / STACK_FILE
    return load_settings(_env_file=stack if stack.exists() else None)


@app.command()
def run(
    service: Annotated[
        str, typer.Argument(help="registry | monitoring | allocation | notifications | dashboard")
    ],
    host: Annotated[str | None, typer.Option(help="Interface for the HTTP API")] = None,
    port: Annotated[int | None, typer.Option(help="Port for the HTTP API")] = None,
    stack_environment: Annotated[
        bool,
        typer.Option(
            "--stack-environment-on-stdin",
            hidden=True,
            help="Load the code, then read the environment `pmo up` gives as one JSON line",
        ),
    ] = False,
    lanes: Annotated[
        str | None,
        typer.Option(
            help="Only these consumer groups, comma-separated: `main` (the service's own) "
            "and/or lanes (notifications: `alerts`); default: PMO_LANES, else all",
        ),
    ] = None,
) -> None:
    """Run one service against the configured Kafka and PostgreSQL (what a container runs)."""
    import uvicorn
    from opentelemetry import trace

    from services.catalog import SERVICES
    from shared.runtime import ServiceRuntime, StartupFailed
    from shared.telemetry import configure_logging

    if service == "dashboard":
        _run_dashboard(host, port, stack_environment)
        return
    if service not in SERVICE_NAMES:
        raise typer.BadParameter(
            f"unknown service {service!r}; one of {', '.join([*SERVICE_NAMES, 'dashboard'])}"
        )
    SERVICES[service]  # its code, loaded while `pmo up` may still be starting the broker
    import shared.http  # noqa: F401  (the HTTP app's, likewise)

    if stack_environment:
        _read_stack_environment()
    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    name: ServiceName = service
    try:
        chosen = lanes_of(SERVICES[name], lanes if lanes is not None else settings.lanes)
        runtime = ServiceRuntime(SERVICES[name], settings, lanes=chosen)
    except ConfigurationError as error:  # a setting missing: say which, not a traceback
        typer.echo(f"pmo run {service}: {error}", err=True)
        raise typer.Exit(2) from error
    trace.set_tracer_provider(runtime.tracer_provider)
    server = uvicorn.Server(
        uvicorn.Config(
            runtime.http_app(),
            host=host or settings.http_host,
            port=port or settings.http_port_for(name),
            log_config=None,
            # Below the pods' termination grace period: the batch in hand finishes, then we exit.
            timeout_graceful_shutdown=25,
        )
    )

    async def start_then_serve() -> None:
        # Started here, not only in the app's lifespan, so that a database or broker that is
        # not usable is said in one line (uvicorn would print the lifespan's traceback).
        try:
            await runtime.start()
        except StartupFailed as error:
            with contextlib.suppress(Exception):
                await runtime.stop()
            typer.echo(f"pmo run {service}: {error}", err=True)
            raise typer.Exit(1) from None
        await server.serve()

    asyncio.run(start_then_serve())


def lanes_of(definition: ServiceDefinition, text: str | None) -> tuple[str, ...] | None:
    """The lanes `ServiceRuntime` takes ("" for the service's own group) from `--lanes` or
    PMO_LANES (`main,alerts`), or None (all) when `text` is None or blank.

    Raises ConfigurationError naming the lanes the service has, for a name it has not.
    """
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    if not names:
        return None
    known = [MAIN_LANE, *definition.lanes]
    if unknown := [name for name in names if name not in known]:
        raise ConfigurationError(
            f"PMO_LANES (--lanes): {definition.name} has no lane {', '.join(unknown)}; "
            f"expected a comma-separated list of {', '.join(known)}"
        )
    return tuple("" if name == MAIN_LANE else name for name in names)


def _read_stack_environment() -> None:
    """Take the environment `pmo up` sends once its broker and database are up (one JSON line
    on stdin: the embedded addresses and generated secrets); exit quietly if it never comes.

    `pmo up` starts its services first, so that they load their code (seconds of CPU each)
    while it starts the broker and the database and migrates the schemas.
    """
    line = sys.stdin.readline()
    if not line.strip():
        raise typer.Exit(0)  # `pmo up` could not start its parts, or stopped meanwhile
    environment = json.loads(line)
    os.environ.update({str(key): str(value) for key, value in environment.items()})


def _run_dashboard(host: str | None, port: int | None, stack_environment: bool = False) -> None:
    """The dashboard: no database of its own; the services' APIs and the outbound topics."""
    import uvicorn

    from services.dashboard.entrypoints.app import create_dashboard_app
    from shared.settings import DASHBOARD_HTTP_PORT
    from shared.telemetry import configure_logging

    if stack_environment:
        _read_stack_environment()
    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        dashboard = create_dashboard_app(settings)
    except ConfigurationError as error:
        typer.echo(f"pmo run dashboard: {error}", err=True)
        raise typer.Exit(2) from error
    uvicorn.run(
        dashboard,
        host=host or settings.http_host,
        port=port or settings.http_port or DASHBOARD_HTTP_PORT,
        log_config=None,
        timeout_graceful_shutdown=25,
    )


@app.command()
def migrate(
    service: Annotated[str | None, typer.Option(help="Only this service's schema")] = None,
) -> None:
    """Apply every service's database migrations, then exit (run before rolling out new pods)."""
    from shared.database import migrate_url
    from shared.telemetry import configure_logging

    if service is not None and service not in SERVICE_NAMES:
        raise typer.BadParameter(
            f"unknown service {service!r}; one of {', '.join(SERVICE_NAMES)}",
            param_hint="--service",
        )
    settings = _settings()
    configure_logging(settings.log_level, settings.log_json)
    names = [service] if service else list(SERVICE_NAMES)

    async def all_services() -> None:
        for name in names:
            await migrate_url(settings.database_url_for(name), name)

    asyncio.run(all_services())
    typer.echo(f"migrated: {', '.join(names)}")


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int | None, typer.Option(help="Partitions per topic", min=1)] = None,
) -> None:
    """Create every topic and its dead-letter topic (existing ones are left as they are)."""
    from pmo.topics import create_topics

    settings = _settings()
    created = asyncio.run(
        create_topics(settings, partitions=partitions, timeout=settings.broker_wait_s)
    )
    typer.echo(f"topics: {len(created)} created")


@token_app.command("create")
def token_create(
    subject: Annotated[str, typer.Option(help="Who: a person's e-mail (a project manager's own)")],
    role: Annotated[str, typer.Option(help="pmo_admin | project_manager | viewer")] = "viewer",
    days: Annotated[int, typer.Option(help="Days until it expires", min=1)] = 90,
) -> None:
    """Issue a bearer token for the HTTP APIs, signed with PMO_TOKEN_SECRET."""
    from shared.security import ROLES, issue_token

    settings = _settings()
    if settings.token_secret is None:
        typer.echo("pmo token create: set PMO_TOKEN_SECRET (the same in every service)", err=True)
        raise typer.Exit(2)
    if role not in ROLES:
        raise typer.BadParameter(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    secret = settings.token_secret.get_secret_value()
    typer.echo(issue_token(secret, subject, role, ttl_seconds=days * 86400))


PortOffset = Annotated[
    int,
    typer.Option(
        help="Added to every default port (dashboard 8000, services 8001-8004, notifications' "
        "alert lane 8005, demo receiver 8099)"
    ),
]


@app.command()
def up(port_offset: PortOffset = 0) -> None:
    """Start the whole system: embedded Kafka and PostgreSQL unless configured, and all services."""
    from pmo.stack import Stack

    settings = load_settings()
    if settings.lanes and settings.lanes.strip():
        # Each of pmo up's processes gets its own lanes; a PMO_LANES left in the shell would
        # otherwise reach every service, and a service without such a lane would never start.
        raise ConfigurationError(
            f"PMO_LANES={settings.lanes!r} is for one process (`pmo run`); `pmo up` runs "
            "notifications' alert lane and the rest of it in a process each: unset PMO_LANES"
        )
    stack = Stack(settings, port_offset=port_offset)
    raise typer.Exit(stack.run())


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the alerts")] = 90.0,
    port_offset: PortOffset = 0,
) -> None:
    """Publish a realistic scenario to the running system and show the alerts it raises."""
    from pmo.demo import run_demo

    port = DEMO_WEBHOOK_PORT + port_offset
    settings = _settings()
    raise typer.Exit(
        asyncio.run(run_demo(settings, port_offset=port_offset, port=port, timeout=timeout))
    )


# `pmo resources import FILE.csv`: the allocation service's bulk import of the resource pool.
app.add_typer(resources_app, name="resources", context_settings={"obj": _settings})


def _one_line(error: BaseException) -> str | None:
    """The one line a user error or an unreachable system deserves, or None for a real bug."""
    import asyncpg
    import httpx
    from aiokafka.errors import KafkaConnectionError, KafkaError
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(error, ConfigurationError):
        return str(error)
    cause = error.__cause__ or error.__context__
    text = str(error) if str(error).startswith(type(error).__name__) else None
    reason = (text or f"{type(error).__name__}: {error}").splitlines()[0][:300]
    if isinstance(error, KafkaConnectionError | KafkaError):
        return f"the Kafka broker does not answer ({reason}): {_hint('broker')}"
    if isinstance(error, OperationalError | InterfaceError | DBAPIError | asyncpg.PostgresError):
        return f"the database does not answer ({reason}): {_hint('database')}"
    if isinstance(error, httpx.TransportError):
        return f"the service does not answer ({reason}): {_UNREACHABLE_HINT}"
    if isinstance(error, ConnectionError | socket.gaierror | TimeoutError):
        return f"could not connect ({reason}): {_hint('either')}"
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.strerror or error}: {error.filename}"
    if cause is not None and cause is not error:
        return _one_line(cause)
    return None


def main() -> None:
    """The `pmo` entry point: user errors and unreachable systems get one line, exit code 2/1."""
    groups = {"topics", "token", "resources"}
    command = " ".join(["pmo", *sys.argv[1 : 3 if sys.argv[1:2] and sys.argv[1] in groups else 2]])
    # aiokafka logs each failed connection attempt; the command says what failed, once.
    # (`pmo run` sets up logging of its own.)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as error:
        line = _one_line(error)
        if line is None:
            raise  # a bug: its traceback is what a report needs
        for part in line.splitlines():
            print(f"{command}: {part}", file=sys.stderr, flush=True)
        raise SystemExit(2 if isinstance(error, ConfigurationError) else 1) from None
