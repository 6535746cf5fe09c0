"""The OpenAPI document of every service says every answer a route can give, errors included.

FastAPI documents a route's success and its 422 only; the answers every service gives besides
(401 and 403 from the token check, 404 for an unknown id in the path, 400 for an unreadable
body, 409 for a write the current state refuses) are added here, once for all services, so that
a client generated from the document handles them. A 422 raised by a route with a sentence is
turned into FastAPI's own list shape, so every 422 reads alike.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_MESSAGE = {"$ref": "#/components/schemas/ErrorMessageOut"}
_MESSAGE_SCHEMA = {
    "title": "ErrorMessageOut",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "string"}},
    "required": ["detail"],
}
_WRITES = frozenset(("post", "put", "patch", "delete"))


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _MESSAGE}}}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the shared error answers to every operation of an OpenAPI document (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorMessageOut"] = _MESSAGE_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            answers: dict[str, Any] = operation["responses"]
            for parameter in operation.get("parameters", []):
                _no_control_characters(parameter.get("schema", {}))
            if operation.get("security"):
                answers.setdefault("401", _answer("No valid bearer token"))
                answers.setdefault("403", _answer("The caller's role may not do this"))
            if "{" in path or method == "get":
                answers.setdefault("404", _answer("Nothing known under this id (or yet)"))
            if "requestBody" in operation:
                answers.setdefault("400", _answer("The body could not be read as JSON"))
            if method in _WRITES:
                answers.setdefault("409", _answer("The current state refuses this change"))
    return schema


def install(app: FastAPI) -> None:
    """Serve the completed document, and give every 422 FastAPI's list shape."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def unprocessable_as_list(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        detail: Any = error.detail
        headers = dict(error.headers or {})
        if error.status_code == 422 and isinstance(detail, str):
            where = "query" if request.method in ("GET", "HEAD") else "body"
            detail = [{"loc": [where], "msg": detail, "type": "value_error"}]
        if isinstance(detail, str):
            detail = _clip(detail, ECHO_CHARACTERS * 2)
        if error.status_code == 405:
            # Starlette names the methods of the first route matching the path only; a path
            # served by several routes (GET and POST /projects) allows all of theirs.
            headers["Allow"] = ", ".join(_allowed_methods(app, request.url.path))
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=headers)

    app.add_exception_handler(HTTPException, unprocessable_as_list)
    app.add_exception_handler(StarletteHTTPException, unprocessable_as_list)

    async def invalid_request(request: Request, error: Exception) -> JSONResponse:
        # FastAPI echoes each refused input; NaN or 1e999 (JSON's parser reads them) cannot be
        # written back as JSON, which turned a 422 into a 500. The echo is made JSON-safe, and
        # clipped: a 300,000-character value sent back whole is no one-line message.
        assert isinstance(error, RequestValidationError)
        problems = _json_safe(jsonable_encoder(error.errors()))
        # Each problem is clipped, not the list of them: its items must stay problems.
        return JSONResponse({"detail": [_clip(problem) for problem in problems]}, 422)

    app.add_exception_handler(RequestValidationError, invalid_request)


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


_PARAMETER_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"


def _no_control_characters(schema: dict[str, Any]) -> None:
    """A path or query parameter never holds a control character (see `shared.http_input`)."""
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") == "string" and "pattern" not in option and "format" not in option:
            option["pattern"] = _PARAMETER_PATTERN


ECHO_CHARACTERS = 200
"""The longest text an error message echoes back of what the caller sent."""
ECHO_ITEMS = 20
"""The most items of a list an error message echoes back."""


def _clip(value: Any, characters: int = ECHO_CHARACTERS) -> Any:
    """`value` with each text longer than `characters` cut, saying how long it was, and each
    list longer than `ECHO_ITEMS` cut, saying how many items it had."""
    if isinstance(value, str):
        if len(value) <= characters:
            return value
        return f"{value[:characters]}… ({len(value):,} characters)"
    if isinstance(value, dict):
        return {key: _clip(item, characters) for key, item in value.items()}
    if isinstance(value, list | tuple):
        clipped = [_clip(item, characters) for item in value[:ECHO_ITEMS]]
        if len(value) > ECHO_ITEMS:
            clipped.append(f"… ({len(value):,} items)")
        return clipped
    return value


def _json_safe(value: Any) -> Any:
    """`value` with every non-finite float as its text ("nan", "inf"), which JSON can carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
