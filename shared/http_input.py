"""Refuses HTTP input no service can store, before any route sees it: NUL and other unstorable text.

PostgreSQL's text type refuses NUL and text that is not valid Unicode; a route that passed such
a value to a query answered 500. Every service's app runs this check first, so the kind is
closed for every route, path, query parameter and JSON body at once, with a 422 that names the
field in FastAPI's own error shape (`detail` a list of `{loc, msg, type}`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _not_null_unless_nullable(schema: dict[str, Any], model: type[BaseModel]) -> None:
    nullable = getattr(model, "nullable_fields", None)
    if nullable is None:
        return
    for name, field in schema.get("properties", {}).items():
        options = field.get("anyOf")
        if name in nullable or not isinstance(options, list):
            continue
        if field.get("default", 0) is None:
            field.pop("default")  # left out, it keeps its value; it is never null
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            field.pop("anyOf")
            field.update(kept[0])
        else:
            field["anyOf"] = kept


class RequestBody(BaseModel):
    """Base of every HTTP request body: unknown fields and lax types are the caller's mistake.

    A misspelt field ("buget") would silently change nothing, and `false` for a capacity or
    "20" for a number would be guessed at: both are a 422 naming the field instead. Dates stay
    lax where their type says so (`IsoDate`): JSON has no date type.

    A partial update (PATCH) sets `nullable_fields`: a field left out keeps its value, and only
    these may be sent as `null`; the JSON Schema says so, so generated clients send no null
    the API would refuse.
    """

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_not_null_unless_nullable
    )

    nullable_fields: ClassVar[frozenset[str] | None] = None


NUL_MESSAGE = "must not contain NUL or other control characters"
UNICODE_MESSAGE = "must be valid Unicode text"


def _control(text: str) -> bool:
    return any(ord(character) < 32 or ord(character) == 127 for character in text)


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_strings(
    value: Any, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Each string in a JSON document (keys included) that cannot be stored, with where it is."""
    if isinstance(value, str):
        if "\x00" in value:
            yield loc, NUL_MESSAGE
        elif _unencodable(value):
            yield loc, UNICODE_MESSAGE
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key or _unencodable(key):
                yield (*loc, key.encode("utf-8", "backslashreplace").decode()), UNICODE_MESSAGE
            else:
                yield from _bad_strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_strings(item, (*loc, index))


def problems_in(
    path: str, query_string: bytes, body: bytes | None, raw_path: bytes | None = None
) -> list[dict[str, Any]]:
    """The 422 `detail` items for the request's unstorable input; empty when it is all fine.

    Free text in a JSON body may hold line breaks; the path and query parameters may not hold
    any control character (no identifier, date or filter holds one).
    """
    problems: list[dict[str, Any]] = []
    # The server decodes %FF in the path to U+FFFD, hiding it: the raw path tells.
    if raw_path is not None:
        try:
            unquote_to_bytes(raw_path).decode("utf-8")
        except UnicodeDecodeError:
            problems.append(
                {"loc": ["path"], "msg": f"the URL path {UNICODE_MESSAGE}", "type": "value_error"}
            )
            return problems
    if _control(path) or _unencodable(path):
        problems.append(
            {"loc": ["path"], "msg": f"the URL path {NUL_MESSAGE}", "type": "value_error"}
        )
    for pair in query_string.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name_bytes = unquote_to_bytes(raw_name.replace(b"+", b" "))
        name = name_bytes.decode("utf-8", "replace")
        try:
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
            name_bytes.decode("utf-8")
        except UnicodeDecodeError:
            problems.append({"loc": ["query", name], "msg": UNICODE_MESSAGE, "type": "value_error"})
            continue
        if _control(name) or _control(value):
            problems.append({"loc": ["query", name], "msg": NUL_MESSAGE, "type": "value_error"})
    # Only a body that may hold a NUL or a lone surrogate is parsed here: the common one is not.
    if body and (b"\\u0000" in body or b"\\ud" in body.lower()):
        try:
            document = json.loads(body)
        except ValueError:
            document = None  # not JSON: the route answers that itself
        for loc, message in _bad_strings(document, ("body",)):
            problems.append({"loc": list(loc), "msg": message, "type": "value_error"})
    return problems


class UnstorableInputGuard:
    """ASGI middleware: answers 422 for unstorable input before routing (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body: bytes | None = None
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if b"json" in content_type:
            chunks: list[bytes] = []
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
        problems = problems_in(
            scope.get("path", ""), scope.get("query_string", b""), body, scope.get("raw_path")
        )
        if problems:
            payload = json.dumps({"detail": problems}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 422,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)
