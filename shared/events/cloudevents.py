"""CloudEvents 1.0 over Kafka (structured and binary mode): parse records, validate data, encode."""

# The official `cloudevents` SDK (2.2.0) is not used here: its Kafka binding raises a mix of
# ValueError, TypeError, KeyError and UnicodeDecodeError, silently turns unparsable JSON data into
# a string, treats an unknown specversion as 1.0, and parses with the stdlib json module (which
# accepts NaN, lone surrogates and UTF-16, and overflows the stack on deep nesting). Parsing with
# pydantic_core's JSON parser is about three times faster and rejects all of those.

from __future__ import annotations

import contextlib
import functools
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails, from_json, to_json

from shared.events.contracts import (
    DATE_PROBLEM,
    INBOUND_EVENTS,
    OUTBOUND_EVENTS,
    EventData,
    parse_timestamp,
)

T = TypeVar("T", bound=EventData)

SPECVERSION: Final = "1.0"
TYPE_PREFIX: Final = "pmo."
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
DATA_CONTENT_TYPE: Final = "application/json"

EVENTS: Final[Mapping[str, type[EventData]]] = {**INBOUND_EVENTS, **OUTBOUND_EVENTS}
"""Every PMO event model by event name."""

_REQUIRED: Final = ("id", "source", "type", "specversion")
_CONTEXT: Final = frozenset((*_REQUIRED, "time", "subject", "datacontenttype", "data"))
_TRACE_HEADERS: Final = frozenset(("traceparent", "tracestate"))
_JSON_MEDIA_TYPE = re.compile(r"(?:application|text)/(?:[^;/\s]+\+)?json", re.IGNORECASE)
_EXTENSION_NAME = re.compile(r"[a-z0-9]+")
_MAX_ERRORS_SHOWN: Final = 5


MAX_ID_LENGTH: Final = 256
"""Longest CloudEvents `id` and `source` accepted, in characters (they are keys of the inbox)."""
MAX_TYPE_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class EventIdentity:
    """Who sent an event and under which id: what an operator matches a dead letter by."""

    id: str
    source: str
    type: str


class InvalidEvent(Exception):
    """A Kafka record that is not a usable PMO CloudEvent; `reason` says what is wrong.

    `identity` is set whenever the envelope's `id`, `source` and `type` could be read, so the
    dead letter names the event the sender knows.
    """

    def __init__(self, reason: str, identity: EventIdentity | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.identity = identity


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed CloudEvent: context attributes plus the still unvalidated JSON `data`."""

    id: str
    source: str
    type: str
    specversion: str
    time: datetime | None
    subject: str | None
    datacontenttype: str | None
    data: Any
    extensions: dict[str, str]
    """Every other attribute as text, e.g. `traceparent`, `tracestate`, `dataschema`."""

    @property
    def event_name(self) -> str:
        return self.type.removeprefix(TYPE_PREFIX)

    @property
    def identity(self) -> EventIdentity:
        return EventIdentity(self.id, self.source, self.type)


def parse_record(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> Envelope:
    """Read one Kafka record as a CloudEvent; raises only InvalidEvent."""
    content_type: str | None = None
    attributes: dict[str, str] = {}
    trace: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = _header_name(raw_name)
        if name == "content-type":
            content_type = _header_value(name, raw_value, content_type)
        elif name.startswith("ce_"):
            attribute = name[3:]
            attributes[attribute] = _header_value(name, raw_value, attributes.get(attribute))
        elif name in _TRACE_HEADERS:
            trace[name] = _header_value(name, raw_value, trace.get(name))

    media_type = _media_type(content_type) if content_type is not None else None
    if media_type == STRUCTURED_CONTENT_TYPE:
        document = _parse_json(value, "value")
        envelope = _identified(document, lambda: _structured(document))
    elif media_type is not None and media_type.startswith("application/cloudevents"):
        raise InvalidEvent(
            f"unsupported content-type {_shown(content_type)}: "
            f"only single events in {STRUCTURED_CONTENT_TYPE} (or binary mode) are accepted"
        )
    elif attributes:
        envelope = _identified(attributes, lambda: _binary(attributes, content_type, value))
    elif content_type is None and (document := _json_object_or_none(value)) is not None:
        # Some producers forget the header; a JSON object with a specversion is unmistakable.
        envelope = _identified(document, lambda: _structured(document))
    else:
        given = f"content-type {_shown(content_type)}" if content_type else "no content-type header"
        raise InvalidEvent(
            f"not a CloudEvent: {given} and no ce_specversion header; expected content-type: "
            f"{STRUCTURED_CONTENT_TYPE} (structured mode) or ce_* headers (binary mode)"
        )

    for name, text in trace.items():
        # Tracing instrumentation may put W3C context on the record rather than in the event.
        envelope.extensions.setdefault(name, text)
    return envelope


def decode_data(envelope: Envelope, model: type[T]) -> T:
    """Validate the envelope's data against `model`; raises InvalidEvent with a readable summary."""
    if envelope.data is None:
        raise InvalidEvent(
            f"data: missing; a {TYPE_PREFIX}{model.event_name} event needs data", envelope.identity
        )
    try:
        return model.model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidEvent(summarize(error), envelope.identity) from None


def decode_event(envelope: Envelope, events: Mapping[str, type[EventData]] = EVENTS) -> EventData:
    """Validate the envelope's data against the model its `type` names among `events`."""
    model = events.get(envelope.event_name) if envelope.type.startswith(TYPE_PREFIX) else None
    if model is None:
        expected = ", ".join(TYPE_PREFIX + name for name in events)
        raise InvalidEvent(
            f"unknown event type {_shown(envelope.type)}; expected one of {expected}",
            envelope.identity,
        )
    return decode_data(envelope, model)


def to_structured(
    data: EventData,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    extensions: Mapping[str, str] | None = None,
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Encode an event as a structured-mode Kafka record value and headers (key: `data.key()`)."""
    if not source:
        raise ValueError("source must not be empty")
    if time is None:
        time = datetime.now(UTC)
    elif time.tzinfo is None:
        raise ValueError("time must be timezone-aware")
    document: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": TYPE_PREFIX + data.event_name,
        "time": time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "subject": data.key(),
        "datacontenttype": DATA_CONTENT_TYPE,
    }
    for name, text in (extensions or {}).items():
        if not _EXTENSION_NAME.fullmatch(name) or name in _CONTEXT or name == "dataschema":
            raise ValueError(f"{name!r} is not a valid CloudEvents extension attribute name")
        document[name] = text
    document["data"] = data
    return to_json(document, by_alias=True), [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


def summarize(error: ValidationError, prefix: str = "data") -> str:
    """One line naming each invalid field of the event data and what is wrong with it."""
    problems = error.errors(include_url=False)
    lines = [f"{_location(prefix, problem['loc'])}: {_problem(problem)}" for problem in problems]
    shown = "; ".join(lines[:_MAX_ERRORS_SHOWN])
    if len(lines) > _MAX_ERRORS_SHOWN:
        shown += f"; and {len(lines) - _MAX_ERRORS_SHOWN} more"
    return shown


# --- parsing --------------------------------------------------------------------------------


def _header_name(name: object) -> str:
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return str(name).lower()


def _header_value(name: str, raw: object, previous: str | None) -> str:
    if raw is None:
        text = ""
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw).decode("utf-8")  # type: ignore[call-overload]
        except (UnicodeDecodeError, TypeError, ValueError):
            raise InvalidEvent(f"header {_shown(name)} is not UTF-8 text") from None
    if previous is not None and previous != text:
        raise InvalidEvent(f"header {_shown(name)} appears twice with different values")
    return text


@functools.lru_cache(maxsize=64)
def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    return _JSON_MEDIA_TYPE.fullmatch(_media_type(content_type)) is not None


def _parse_json(raw: bytes | None, what: str) -> Any:
    if raw is None:
        raise InvalidEvent(f"{what} is empty (a tombstone?); expected a JSON CloudEvent")
    try:
        return from_json(raw, allow_inf_nan=False)
    except ValueError as error:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as not_text:
            raise InvalidEvent(
                f"{what} is not UTF-8 text (invalid byte at offset {not_text.start})"
            ) from None
        raise InvalidEvent(f"{what} is not valid JSON: {error}") from None


def _json_object_or_none(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        document = from_json(raw, allow_inf_nan=False)
    except ValueError:
        return None
    return document if isinstance(document, dict) and "specversion" in document else None


def _structured(document: Any) -> Envelope:
    if not isinstance(document, dict):
        raise InvalidEvent(
            f"a structured CloudEvent must be a JSON object (got {_json_kind(document)})"
        )
    missing = [name for name in _REQUIRED if document.get(name) is None]
    if missing:
        raise InvalidEvent(f"missing required CloudEvents attribute(s): {', '.join(missing)}")
    if "data_base64" in document:
        raise InvalidEvent("data_base64 (binary data) is not supported; PMO events carry JSON data")
    datacontenttype = _optional_text(document, "datacontenttype")
    if datacontenttype is not None and not _is_json(datacontenttype):
        raise InvalidEvent(
            f"datacontenttype {_shown(datacontenttype)} is not JSON; PMO events carry JSON data"
        )
    extensions: dict[str, str] = {}
    for name, item in document.items():
        if name not in _CONTEXT and item is not None:
            extensions[name] = _extension_text(name, item)
    return _envelope(
        event_id=_required_text(document, "id"),
        source=_required_text(document, "source"),
        event_type=_required_text(document, "type"),
        specversion=_required_text(document, "specversion"),
        time=_optional_text(document, "time"),
        subject=_optional_text(document, "subject"),
        datacontenttype=datacontenttype,
        data=document.get("data"),
        extensions=extensions,
        origin="attribute",
    )


def _binary(attributes: dict[str, str], content_type: str | None, raw: bytes | None) -> Envelope:
    missing = [f"ce_{name}" for name in _REQUIRED if name not in attributes]
    if missing:
        raise InvalidEvent(f"missing required header(s) for binary mode: {', '.join(missing)}")
    if content_type is None:
        content_type = attributes.get("datacontenttype")
    # Without a content type the data is taken as JSON: that is the only kind PMO events carry.
    if content_type is not None and not _is_json(content_type):
        raise InvalidEvent(
            f"binary-mode data has content-type {_shown(content_type)}; PMO events carry JSON data"
        )
    extensions = {name: text for name, text in attributes.items() if name not in _CONTEXT}
    return _envelope(
        event_id=attributes["id"],
        source=attributes["source"],
        event_type=attributes["type"],
        specversion=attributes["specversion"],
        time=attributes.get("time"),
        subject=attributes.get("subject"),
        datacontenttype=content_type,
        data=_parse_json(raw, "data (record value)") if raw else None,
        extensions=extensions,
        origin="header",
    )


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")
_LENGTH_LIMITS: Final = {"id": MAX_ID_LENGTH, "source": MAX_ID_LENGTH, "type": MAX_TYPE_LENGTH}


def _envelope(
    *,
    event_id: str,
    source: str,
    event_type: str,
    specversion: str,
    time: str | None,
    subject: str | None,
    datacontenttype: str | None,
    data: Any,
    extensions: dict[str, str],
    origin: str,
) -> Envelope:
    def where(name: str) -> str:
        return f"header ce_{name}" if origin == "header" else f"attribute {name!r}"

    for name, text in (("id", event_id), ("source", source), ("type", event_type)):
        if not text:
            raise InvalidEvent(f"{where(name)} must not be empty")
        if len(text) > _LENGTH_LIMITS[name]:
            raise InvalidEvent(
                f"{where(name)} is {len(text)} characters long; "
                f"at most {_LENGTH_LIMITS[name]} are accepted"
            )
        # Identities are stored (inbox, dead letters) and shown: no control characters, which
        # PostgreSQL's text type would refuse (NUL) and which no sender means.
        if _CONTROL_CHARACTER.search(text):
            raise InvalidEvent(f"{where(name)} contains a control character")
        if not text.isascii():
            _require_encodable(where(name), text)
    identity = EventIdentity(event_id, source, event_type)
    if specversion != SPECVERSION:
        raise InvalidEvent(
            f"{where('specversion')} is {_shown(specversion)}; "
            f"only CloudEvents {SPECVERSION} is supported",
            identity,
        )
    try:
        moment = parse_timestamp(time, where("time")) if time is not None else None
    except ValueError as error:
        raise InvalidEvent(str(error), identity) from None
    return Envelope(
        id=event_id,
        source=source,
        type=event_type,
        specversion=specversion,
        time=moment,
        subject=subject,
        datacontenttype=datacontenttype,
        data=data,
        extensions=extensions,
    )


def salvage_identity(
    value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> tuple[str | None, str | None, str | None]:
    """The CloudEvents `id`, `source` and `type` of a refused record, as far as they can be read.

    For a dead letter only, when the record was refused before (or beside) its envelope: too
    large, a broken side header, one attribute out of bounds. Binary-mode headers first, then
    a structured value; each attribute is kept alone if it is readable text without control
    characters, else left out.
    """
    found: dict[str, str | None] = {"id": None, "source": None, "type": None}
    for raw_name, raw_value in headers:
        name = _header_name(raw_name)
        if name.startswith("ce_") and name[3:] in found:
            with contextlib.suppress(UnicodeDecodeError, TypeError, ValueError):
                found[name[3:]] = bytes(raw_value).decode("utf-8")
    if not any(found.values()) and value:
        try:
            document = from_json(value, allow_inf_nan=False)
        except ValueError:
            document = None
        if isinstance(document, dict):
            for name in found:
                text = document.get(name)
                found[name] = text if isinstance(text, str) else None
    readable = [
        text if text and not any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in text) else None
        for text in found.values()
    ]
    return readable[0], readable[1], readable[2]


def _identified(attributes: Any, build: Callable[[], Envelope]) -> Envelope:
    """Build the envelope; if it is refused, name the event in the error whenever possible."""
    try:
        return build()
    except InvalidEvent as error:
        if error.identity is None and isinstance(attributes, dict):
            error.identity = _readable_identity(attributes)
        raise


def _readable_identity(attributes: dict[str, Any]) -> EventIdentity | None:
    texts: list[str] = []
    for name in ("id", "source", "type"):
        text = attributes.get(name)
        if not isinstance(text, str) or not text or len(text) > MAX_ID_LENGTH:
            return None
        if _CONTROL_CHARACTER.search(text):
            return None
        texts.append(text)
    return EventIdentity(*texts)


def _required_text(document: dict[str, Any], name: str) -> str:
    item = document[name]
    if not isinstance(item, str):
        raise InvalidEvent(f"attribute {name!r} must be a string (got {_json_kind(item)})")
    return item


def _optional_text(document: dict[str, Any], name: str) -> str | None:
    item = document.get(name)
    if item is None or isinstance(item, str):
        return item
    raise InvalidEvent(f"attribute {name!r} must be a string (got {_json_kind(item)})")


def _extension_text(name: str, item: Any) -> str:
    # CloudEvents extension values are strings, booleans or integers; keep their canonical text.
    if isinstance(item, str):
        return item
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int | float):
        return to_json(item).decode("ascii")
    raise InvalidEvent(
        f"extension attribute {_shown(name)} must be a string, number or boolean "
        f"(got {_json_kind(item)})"
    )


def _require_encodable(where: str, text: str) -> None:
    # Headers can carry lone surrogates after decoding; they could not be stored or logged later.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(f"{where} is not valid Unicode text") from None


# --- error summaries ------------------------------------------------------------------------

_CONSTRAINTS: Final[dict[str, str]] = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters long",
    "too_long": "must have at most {max_length} item(s)",
    "too_short": "must have at least {min_length} item(s)",
    "literal_error": "must be one of {expected}",
    "string_type": "must be a string",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "date_type": DATE_PROBLEM,
    "date_parsing": DATE_PROBLEM,
    "date_from_datetime_parsing": DATE_PROBLEM,
    "date_from_datetime_inexact": DATE_PROBLEM,
}


def _problem(problem: ErrorDetails) -> str:
    kind = problem["type"]
    context = problem.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        return str(context.get("error", problem["msg"]))
    template = _CONSTRAINTS.get(kind)
    if template:
        # Bounds arrive as floats for float fields; "at most 100" reads better than "100.0".
        text = template.format(
            **{
                name: int(bound) if isinstance(bound, float) and bound.is_integer() else bound
                for name, bound in context.items()
            }
        )
    else:
        text = problem["msg"][:1].lower() + problem["msg"][1:]
    return f"{text} (got {_shown_json(problem['input'])})"


def _location(prefix: str, loc: tuple[int | str, ...]) -> str:
    parts = [prefix]
    for part in loc:
        # Dictionary keys (metric names) come from the sender: keep them short.
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part[:40]}")
    return "".join(parts)


def _json_kind(item: Any) -> str:
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "a boolean"
    if isinstance(item, int | float):
        return "a number"
    if isinstance(item, str):
        return "a string"
    if isinstance(item, list):
        return "an array"
    return "an object"


def _shown(item: object) -> str:
    try:
        text = repr(item)
    except ValueError:  # an integer too long to print
        text = f"<{type(item).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _shown_json(item: Any) -> str:
    try:
        text = to_json(item).decode("utf-8")
    except (ValueError, TypeError, UnicodeDecodeError):
        return _shown(item)
    return text if len(text) <= 60 else text[:57] + "..."
