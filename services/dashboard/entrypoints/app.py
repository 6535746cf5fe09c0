"""The dashboard's pages and actions, over the services' HTTP APIs, with live updates by SSE."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import plotly  # type: ignore[import-untyped]
from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from markupsafe import Markup
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse
from starlette.middleware.sessions import SessionMiddleware

from services.dashboard.adapters.live import EventFeed
from services.dashboard.adapters.services_api import ServiceError, ServicesApi
from services.dashboard.domain import portfolio, whatif
from services.dashboard.entrypoints.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    Refused,
    SignedIn,
    SignInRequired,
    check_csrf,
    csrf_token,
    require_admin,
    require_signed_in,
    session_key,
    sign_in,
    sign_out,
    signed_in,
)
from shared.events.contracts import Directive, StrategicObjective, StrategyChanged
from shared.settings import SERVICE_NAMES, Settings

HERE = Path(__file__).resolve().parent.parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
HEATMAP_WEEKS = 16
MISSING = "\u2013"  # an en dash where a figure is undefined
LAG_LINE = re.compile(r"^pmo_consumer_lag\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$", re.MULTILINE)

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["colours"] = portfolio.HEALTH_COLOURS
templates.env.globals["NO_REPORT"] = portfolio.NO_REPORT


def _money(value: Any, digits: int = 0) -> str:
    return MISSING if value is None else f"{float(value):,.{digits}f}"


def _index(value: Any) -> str:
    return MISSING if value is None else f"{float(value):.2f}"


def _number(value: Any) -> str:
    """Figures in reasons: indices with two decimals, money and days rounded to whole units."""
    if value is None:
        return MISSING
    number = float(value)
    return f"{number:.2f}" if abs(number) < 10 else f"{number:,.0f}"


templates.env.filters["money"] = _money
templates.env.filters["index"] = _index
templates.env.filters["number"] = _number


def _figure_json(figure: Any) -> Markup:
    """A chart's figure for a `<script type="application/json">`: `<`, `>` and `&` escaped so
    no project name can close the script element."""
    text = json.dumps(figure).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))


templates.env.filters["tojson_figure"] = _figure_json


def create_dashboard_app(settings: Settings) -> FastAPI:
    """The dashboard app; its lifespan opens the services' client and the live event feed."""
    key = session_key(settings)  # refuses to build without PMO_TOKEN_SECRET, with why
    settings.bootstrap_servers()  # and without a Kafka to hear the events from

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.api = ServicesApi(settings)
        app.state.feed = EventFeed(settings)
        await app.state.feed.start()
        try:
            yield
        finally:
            await app.state.feed.stop()
            await app.state.api.close()

    app = FastAPIOffline(
        title="PMO dashboard",
        summary="The PMO's pages over the registry, allocation, monitoring and notifications APIs",
        version="0.1.0",
        lifespan=lifespan,
        static_url="/static/docs",
    )
    app.state.settings = settings
    app.add_middleware(
        SessionMiddleware,
        secret_key=key,
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.dashboard_session_hours * 3600),
        same_site="strict",
        https_only=settings.dashboard_public_url.startswith("https://"),
    )
    app.mount("/static/app", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    _routes(app)
    _errors(app)
    return app


def _api(request: Request) -> ServicesApi:
    api: ServicesApi = request.app.state.api
    return api


def _page(
    request: Request,
    template: str,
    user: SignedIn | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"user": user, "csrf": csrf_token(request), "csrf_field": CSRF_FIELD, **context},
        status_code=status_code,
    )


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect to another host would help phishing."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _errors(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, _: SignInRequired) -> Response:
        if request.url.path.startswith("/api/") or request.url.path == "/events":
            return JSONResponse({"detail": "Sign in first."}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": error.message}, status_code=error.status)
        return _page(
            request,
            "error.html",
            signed_in(request),
            status_code=error.status,
            title="Not allowed",
            message=error.message,
        )

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> Response:
        # A service's own refusal (401/403/404/409/422) is the person's answer; anything else
        # is the system's trouble, said as such.
        status = error.status if error.status in (401, 403, 404, 409, 422) else 502
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": error.message}, status_code=status)
        return _page(
            request,
            "error.html",
            signed_in(request),
            status_code=status,
            title="The services said no" if status < 500 else "A service is unavailable",
            message=error.message,
        )


async def _ranking(api: ServicesApi, token: str) -> list[dict[str, Any]]:
    answer = await api.get("registry", "/portfolio", token)
    return list(answer.get("projects") or [])


def _matches(project: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    unit = filters.get("business_unit")
    if unit and str(project.get("business_unit") or "").casefold() != unit.casefold():
        return False
    if filters.get("lifecycle") and project.get("lifecycle") != filters["lifecycle"]:
        return False
    if filters.get("program_id") and project.get("program_id") != filters["program_id"]:
        return False
    return not (
        filters.get("methodology")
        and (project.get("methodology") or "standard") != filters["methodology"]
    )


async def overview_data(
    api: ServicesApi, token: str, filters: Mapping[str, str]
) -> tuple[portfolio.Overview, dict[str, list[str]]]:
    """The overview of the projects matching `filters`, and the values each filter offers."""
    # Health for the whole portfolio in one call (per 500 projects), alongside the registry's
    # lists: the registry's own business unit, stage and methodology decide the filters.
    projects, ranking, assessed = await asyncio.gather(
        api.all_projects(token), _ranking(api, token), api.all_health(token)
    )
    options = {
        "business_unit": sorted({str(p["business_unit"]) for p in projects}),
        "lifecycle": sorted({str(p["lifecycle"]) for p in projects}),
        "methodology": sorted({str(p.get("methodology") or "standard") for p in projects}),
        "program_id": sorted({str(p["program_id"]) for p in projects if p.get("program_id")}),
    }
    chosen = [p for p in projects if _matches(p, filters)]
    health = {str(p["project_id"]): assessed.get(str(p["project_id"])) for p in chosen}
    return portfolio.overview(chosen, health, ranking), options


class WhatIfDraftIn(BaseModel):
    """A draft strategy to try: objective weights and directives (the JSON API's body)."""

    objectives: list[StrategicObjective] = Field(min_length=1)
    directives: list[Directive] = []


async def combined_what_if(
    api: ServicesApi, token: str, draft: WhatIfDraftIn
) -> whatif.WhatIfResult:
    """Rank the draft (registry), then try its WHOLE ranking and stages on the people
    (allocation), and lay both beside the ranking now. Nothing is applied or published."""
    current_version = 0
    try:
        strategy = await api.get("registry", "/objectives", token)
        current_version = int(strategy["strategy_version"])
    except ServiceError as error:
        if error.status != 404:
            raise
    event = StrategyChanged(
        strategy_version=current_version + 1,
        effective_date=datetime.now(UTC).date(),
        objectives=draft.objectives,
        directives=draft.directives,
    )
    body = event.model_dump(mode="json")
    registry_answer, current = await asyncio.gather(
        api.call("registry", "POST", "/portfolio/what-if", token, json=body),
        _ranking(api, token),
    )
    allocation_answer = await api.call(
        "allocation", "POST", "/what-if", token, json=whatif.allocation_draft(registry_answer)
    )
    return whatif.combine(current, registry_answer, allocation_answer)


def _number_or_text(value: Any) -> Any:
    """The number a form field holds, or the text itself (refused by the contract, named)."""
    try:
        return float(str(value).strip())
    except ValueError:
        return value


def _draft_from_form(form: Mapping[str, Any]) -> WhatIfDraftIn:
    """The draft typed into the strategy page's form; Refused(422) with each mistake named."""
    objectives = []
    for key, value in form.items():
        if key.startswith("weight:"):
            objective_id = key.split(":", 1)[1]
            objectives.append(
                {
                    "objective_id": objective_id,
                    "name": form.get(f"name:{objective_id}") or objective_id,
                    # A form sends text; the contract takes a JSON number, strictly.
                    "weight": _number_or_text(value),
                }
            )
    directives = []
    for row in range(5):
        action = str(form.get(f"directive_action_{row}") or "").strip()
        target = str(form.get(f"directive_target_{row}") or "").strip()
        if not action and not target:
            continue
        kind, _, target_id = target.partition(":")
        field = {"project": "project_id", "unit": "business_unit", "objective": "objective_id"}
        directives.append(
            {
                "action": action,
                field.get(kind.strip(), "project_id"): (target_id or kind).strip(),
                "reason": str(form.get(f"directive_reason_{row}") or "what-if").strip(),
            }
        )
    try:
        return WhatIfDraftIn.model_validate({"objectives": objectives, "directives": directives})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise Refused(f"The draft is not valid: {problems}", status=422) from error


async def _strategy_page(
    request: Request,
    user: SignedIn,
    result: whatif.WhatIfResult | None = None,
    draft: WhatIfDraftIn | None = None,
) -> HTMLResponse:
    api = _api(request)
    try:
        strategy = await api.get("registry", "/objectives", user.token)
    except ServiceError as error:
        if error.status != 404:
            raise
        strategy = None
    ranking = await _ranking(api, user.token)
    return _page(
        request,
        "strategy.html",
        user,
        strategy=strategy,
        ranking=ranking,
        result=result,
        draft=draft,
        actions=["terminate", "pause", "accelerate", "deprioritize"],
    )


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _routes(app: FastAPI) -> None:
    @app.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> FileResponse:
        # Plotly's own bundle from the installed wheel: the charts work without the internet.
        return FileResponse(
            PLOTLY_JS,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/livez", tags=["operations"], summary="The process is alive")
    async def livez() -> dict[str, str]:
        return {"status": "alive", "service": "dashboard"}

    @app.get("/readyz", tags=["operations"], summary="Live updates are being read")
    async def readyz(request: Request) -> JSONResponse:
        ready = request.app.state.feed.ready.is_set()
        return JSONResponse(
            {
                "status": "ready" if ready else "not ready",
                "checks": {"live_feed": "ok" if ready else "starting"},
            },
            status_code=200 if ready else 503,
        )

    @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
    async def signin_form(request: Request, next: str | None = None) -> HTMLResponse:
        return _page(request, "signin.html", signed_in(request), next=_safe_next(next), error=None)

    @app.post("/signin", include_in_schema=False)
    async def signin(
        request: Request,
        token: Annotated[str, Form(max_length=4096)] = "",
        csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        check_csrf(request, csrf_token_)
        principal = sign_in(request, request.app.state.settings, token)
        if principal is None:
            return _page(
                request,
                "signin.html",
                None,
                status_code=401,
                next=_safe_next(next),
                error="That token is not valid (unknown, expired or altered). Ask your PMO "
                "administrator for one (`pmo token create`).",
            )
        return RedirectResponse(_safe_next(next), status_code=303)

    @app.post("/signout", include_in_schema=False)
    async def signout(
        request: Request, csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = ""
    ) -> Response:
        check_csrf(request, csrf_token_)
        sign_out(request)
        return RedirectResponse("/signin", status_code=303)

    @app.get("/events", include_in_schema=False)
    async def events(request: Request) -> EventSourceResponse:
        """Server-Sent Events: each outbound event as it is read, for the open page."""
        require_signed_in(request)
        feed: EventFeed = request.app.state.feed

        async def stream() -> AsyncIterator[dict[str, str]]:
            async with feed.subscribe() as queue:
                yield {"event": "ready", "data": "{}"}
                while True:
                    event = await queue.get()
                    yield {"event": "pmo", "data": event.json()}

        return EventSourceResponse(stream(), ping=15)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview_page(
        request: Request,
        business_unit: str = "",
        lifecycle: str = "",
        methodology: str = "",
        program_id: str = "",
    ) -> HTMLResponse:
        user = require_signed_in(request)
        filters = {
            "business_unit": business_unit,
            "lifecycle": lifecycle,
            "methodology": methodology,
            "program_id": program_id,
        }
        api = _api(request)
        (data, options), standing = await asyncio.gather(
            overview_data(api, user.token, filters),
            api.get("allocation", "/conflicts", user.token, state="resolved", limit=50),
        )
        shown = {line.project_id for line in data.projects}
        return _page(
            request,
            "overview.html",
            user,
            overview=data,
            filters=filters,
            options=options,
            bubble=portfolio.bubble_chart(data.projects),
            conflicts=portfolio.conflicts_involving(standing, shown),
            levels=[*portfolio.HEALTH_LEVELS, portfolio.NO_REPORT],
        )

    @app.get("/projects/{project_id}", response_class=HTMLResponse, include_in_schema=False)
    async def project_page(request: Request, project_id: str) -> HTMLResponse:
        user = require_signed_in(request)
        api, token, pid = _api(request), user.token, quote(project_id)
        project = await api.get("registry", f"/projects/{pid}", token)
        (
            history,
            health,
            health_history,
            allocations,
            requests,
            conflicts,
            models,
            gates,
            lessons,
            suggestions,
            registered_baselines,
            interventions,
        ) = await asyncio.gather(
            api.get("registry", f"/projects/{pid}/history", token, limit=1000),
            api.get_or_none("monitoring", f"/projects/{pid}/health", token),
            api.get_or_none("monitoring", f"/projects/{pid}/health/history", token, limit=1000),
            api.get("allocation", f"/projects/{pid}/allocations", token),
            api.get("allocation", "/requests", token, project_id=project_id, limit=500),
            api.get("allocation", "/conflicts", token, project_id=project_id, limit=100),
            api.get("registry", "/stage-models", token),
            api.get("registry", f"/projects/{pid}/gates", token),
            api.get("registry", f"/projects/{pid}/lessons", token),
            api.get("registry", f"/projects/{pid}/lesson-suggestions", token),
            api.get("registry", f"/projects/{pid}/baselines", token),
            api.get("allocation", "/interventions", token, project_id=project_id, limit=100),
        )
        series = health_history or []
        baselines = portfolio.baselines(registered_baselines)
        methodology = project.get("methodology")
        model = next(
            (
                m
                for m in models
                if (m["name"] == methodology) or (methodology is None and m.get("default"))
            ),
            None,
        )
        return _page(
            request,
            "project.html",
            user,
            project=project,
            line=portfolio.project_line(project, health, None),
            health=health,
            history=history.get("items") or [],
            ev_chart=portfolio.earned_value_series(series, project, health, baselines),
            index_chart=portfolio.index_series(series),
            changes=portfolio.health_changes(series),
            baselines=baselines,
            rebaselines=[baseline for baseline in baselines if baseline.rebaseline],
            allocations=allocations,
            requests=requests,
            conflicts=conflicts,
            interventions=interventions,
            model=model,
            may_manage=user.may_manage(project.get("manager")),
            gates=gates,
            lessons=lessons,
            suggestions=suggestions,
        )

    @app.get("/programs/{program_id}", response_class=HTMLResponse, include_in_schema=False)
    async def program_page(request: Request, program_id: str) -> HTMLResponse:
        """A program's roll-up (the registry's) with its people and conflicts (allocation's,
        asked per project: allocation owns them, see the registry README)."""
        user = require_signed_in(request)
        api, token = _api(request), user.token
        roll_up = await api.get(
            "registry", f"/programs/{quote(program_id, safe='')}/roll-up", token
        )
        project_ids = [figures["project_id"] for figures in roll_up["projects"]]
        people, conflicts = await asyncio.gather(
            asyncio.gather(
                *(
                    api.get("allocation", f"/projects/{quote(pid, safe='')}/allocations", token)
                    for pid in project_ids
                )
            ),
            asyncio.gather(
                *(
                    api.get("allocation", "/conflicts", token, project_id=pid, limit=100)
                    for pid in project_ids
                )
            ),
        )
        unique = {c["conflict_id"]: c for answer in conflicts for c in answer}
        return _page(
            request,
            "program.html",
            user,
            roll_up=roll_up,
            people=[line for answer in people for line in answer],
            conflicts=sorted(unique.values(), key=lambda c: str(c.get("created_at") or "")),
        )

    @app.post("/projects/{project_id}/transition", include_in_schema=False)
    async def transition(
        request: Request,
        project_id: str,
        to: Annotated[str, Form()],
        reason: Annotated[str, Form(max_length=2000)] = "",
        csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    ) -> Response:
        """Move a project to another stage with the person's own token: the registry decides
        whether a project manager may (own projects only) and whether the gate allows it."""
        user = require_signed_in(request)
        check_csrf(request, csrf_token_)
        if user.principal.role == "viewer":
            raise Refused("Viewers read the portfolio; moving a project needs a project manager.")
        body: dict[str, Any] = {"to": to}
        if reason.strip():
            body["reason"] = reason.strip()
        await _api(request).call(
            "registry", "POST", f"/projects/{quote(project_id)}/transitions", user.token, json=body
        )
        return RedirectResponse(f"/projects/{quote(project_id)}", status_code=303)

    @app.get("/report", response_class=HTMLResponse, include_in_schema=False)
    async def portfolio_report(request: Request) -> HTMLResponse:
        """The registry's HTML portfolio report (A4 and 1280-pixel wide), for a browser: the
        registry wants a bearer token a browser cannot send; the session's is forwarded."""
        user = require_signed_in(request)
        page = await _api(request).text("registry", "/reports/portfolio", user.token, format="html")
        return HTMLResponse(page)

    @app.get("/capacity", response_class=HTMLResponse, include_in_schema=False)
    async def capacity_page(
        request: Request, from_week: str = "", weeks: int = HEATMAP_WEEKS
    ) -> HTMLResponse:
        user = require_signed_in(request)
        api, token = _api(request), user.token
        weeks = min(max(weeks, 1), 104)
        start = from_week or _iso_week(datetime.now(UTC).date())
        try:
            first = date.fromisocalendar(int(start[:4]), int(start[6:8]), 1)
        except (ValueError, IndexError):
            raise Refused(f"{start!r} is not an ISO week like 2026-W05.", status=422) from None
        end = _iso_week(first + timedelta(weeks=weeks - 1))
        utilisation, requests, conflicts = await asyncio.gather(
            api.get("allocation", "/utilisation", token, from_week=start, to_week=end),
            api.get("allocation", "/requests", token, limit=500),
            api.get("allocation", "/conflicts", token, limit=100),
        )
        demand = portfolio.skill_demand(requests, utilisation)
        return _page(
            request,
            "capacity.html",
            user,
            heatmap=portfolio.utilisation_heatmap(utilisation),
            skills=portfolio.skill_chart(demand),
            over=[line for line in demand if line.over],
            conflicts=conflicts,
            from_week=start,
            to_week=end,
            people=len(utilisation),
        )

    @app.get("/lessons", response_class=HTMLResponse, include_in_schema=False)
    async def lessons_page(
        request: Request, q: str = "", business_unit: str = "", tag: str = ""
    ) -> HTMLResponse:
        """Lessons learned found by the registry's full-text search, most relevant first."""
        user = require_signed_in(request)
        query = q.strip()
        found: list[dict[str, Any]] = []
        if query:
            filters = {
                name: value.strip()
                for name, value in (("business_unit", business_unit), ("tag", tag))
                if value.strip()
            }
            found = await _api(request).get("registry", "/lessons", user.token, q=query, **filters)
        return _page(
            request,
            "lessons.html",
            user,
            q=query,
            business_unit=business_unit.strip(),
            tag=tag.strip(),
            found=found,
        )

    @app.get("/strategy", response_class=HTMLResponse, include_in_schema=False)
    async def strategy_page(request: Request) -> HTMLResponse:
        user = require_signed_in(request)
        return await _strategy_page(request, user)

    @app.post("/strategy/what-if", response_class=HTMLResponse, include_in_schema=False)
    async def strategy_what_if(request: Request) -> HTMLResponse:
        user = require_signed_in(request)
        form = await request.form()
        check_csrf(request, str(form.get(CSRF_FIELD) or ""))
        if not user.is_admin:
            raise Refused(
                "Trying a draft strategy is for PMO administrators; you are signed in as "
                f"{user.role_name}."
            )
        draft = _draft_from_form({k: str(v) for k, v in form.items()})
        result = await combined_what_if(_api(request), user.token, draft)
        return await _strategy_page(request, user, result=result, draft=draft)

    @app.post("/api/what-if", tags=["what-if"], summary="The combined what-if of a draft strategy")
    async def api_what_if(request: Request, draft: WhatIfDraftIn) -> dict[str, Any]:
        """The draft's ranking, actions and allocation changes beside today's, in one step;
        nothing is applied. Signed-in PMO administrators (session cookie)."""
        user = require_signed_in(request)
        check_csrf(request, request.headers.get("x-csrf-token"))
        if not user.is_admin:
            raise Refused("Trying a draft strategy is for PMO administrators.")
        return (await combined_what_if(_api(request), user.token, draft)).as_json()

    @app.get("/operations", response_class=HTMLResponse, include_in_schema=False)
    async def operations_page(request: Request) -> HTMLResponse:
        user = require_admin(request)
        api, token = _api(request), user.token

        async def of_service(name: str) -> dict[str, Any]:
            dead, parked, lag = await asyncio.gather(
                api.get(name, "/dead-letters", token, limit=20),  # type: ignore[arg-type]
                api.get(name, "/parked", token, limit=20),  # type: ignore[arg-type]
                _lag(api, name),
                return_exceptions=True,
            )
            return {
                "name": name,
                "dead_letters": dead if isinstance(dead, list) else [],
                "parked": parked if isinstance(parked, list) else [],
                "lag": lag if isinstance(lag, list) else [],
                "error": next(
                    (str(x) for x in (dead, parked, lag) if isinstance(x, Exception)), None
                ),
            }

        services, dead, failing = await asyncio.gather(
            asyncio.gather(*(of_service(name) for name in SERVICE_NAMES)),
            api.get("notifications", "/deliveries", token, state="dead", limit=50),
            api.get("notifications", "/deliveries", token, state="pending", limit=200),
        )
        return _page(
            request,
            "operations.html",
            user,
            services=services,
            dead=dead,
            failing=[d for d in failing if d.get("last_error")],
        )

    @app.post("/operations/deliveries/{delivery_id}/retry", include_in_schema=False)
    async def retry_delivery(
        request: Request,
        delivery_id: int,
        csrf_token_: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    ) -> Response:
        user = require_signed_in(request)
        check_csrf(request, csrf_token_)
        if not user.is_admin:
            raise Refused(
                "Retrying a delivery is for PMO administrators; you are signed in as "
                f"{user.role_name}."
            )
        await _api(request).call(
            "notifications", "POST", f"/deliveries/{delivery_id}/retry", user.token
        )
        return RedirectResponse("/operations", status_code=303)


async def _lag(api: ServicesApi, name: str) -> list[dict[str, Any]]:
    """The consumer lag each service reports on /metrics, per topic (partitions added up)."""
    text = await api.metrics_text(name)  # type: ignore[arg-type]
    totals: dict[str, float] = {}
    for match in LAG_LINE.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        topic = labels.get("topic", "?")
        totals[topic] = totals.get(topic, 0.0) + float(match.group("value"))
    return [{"topic": topic, "lag": int(value)} for topic, value in sorted(totals.items())]
