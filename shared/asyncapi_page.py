"""The AsyncAPI document as a readable HTML page, rendered on the server.

FastStream's own page loads the AsyncAPI React component from a public CDN, so it is blank
without the internet; this page needs no script at all: the channels each service consumes and
publishes, and every payload schema's fields, from the same AsyncAPI 3 document `/asyncapi.json`
serves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import jinja2

_PAGE = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ info.title }} · AsyncAPI</title>
<style>
body { font: 14px/1.45 system-ui, "DejaVu Sans", sans-serif; color: #24292f; max-width: 1100px;
  margin: 0 auto; padding: 16px 24px; }
table { border-collapse: collapse; width: 100%; margin-bottom: 12px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaeef2;
  vertical-align: top; }
th { background: #f6f8fa; } code { font-size: 12px; } .muted { color: #57606a; }
.receive { color: #0969da; } .send { color: #1a7f37; } section { margin-top: 20px; }
</style></head><body>
<h1>{{ info.title }} <span class="muted">{{ info.version }} · AsyncAPI {{ version }}</span></h1>
<p>{{ info.description }}</p>
<p class="muted">Machine-readable: <a href="asyncapi.json">asyncapi.json</a>.
Every message is a CloudEvent 1.0; the payload below is its <code>data</code>.</p>
<h2>Channels</h2>
<table><thead><tr><th>Direction</th><th>Topic</th><th>Message</th><th>About</th></tr></thead><tbody>
{% for op in operations %}
<tr><td class="{{ op.action }}">{{ 'consumes' if op.action == 'receive' else 'publishes' }}</td>
<td><code>{{ op.address }}</code></td>
<td>{% for s in op.schemas %}<a href="#{{ s }}">{{ s }}</a> {% endfor %}</td>
<td>{{ op.description }}</td></tr>
{% endfor %}
</tbody></table>
<h2>Payloads</h2>
{% for name, schema in schemas %}
<section id="{{ name }}"><h3>{{ schema.get('title') or name }}</h3>
{% if schema.get('description') %}<p>{{ schema.description }}</p>{% endif %}
{% if schema.get('properties') %}
<table><thead><tr><th>Field</th><th>Type</th><th>Required</th><th>About</th></tr></thead><tbody>
{% for field, spec in schema.properties.items() %}
<tr><td><code>{{ field }}</code></td><td>{{ type_of(spec) }}</td>
<td>{{ 'yes' if field in schema.get('required', []) else '' }}</td>
<td>{{ spec.get('description', '') }}</td></tr>
{% endfor %}
</tbody></table>
{% else %}<p class="muted">{{ type_of(schema) }}</p>{% endif %}
</section>
{% endfor %}
</body></html>
"""
)


def _ref_name(ref: str) -> str:
    return unquote(ref.rsplit("/", 1)[-1])


def _type_of(spec: dict[str, Any]) -> str:
    """A schema's type in a few words: `string (date)`, `array of RiskReason`, `A | null`."""
    if "$ref" in spec:
        return _ref_name(spec["$ref"])
    if "anyOf" in spec or "oneOf" in spec:
        options: list[dict[str, Any]] = spec.get("anyOf") or spec.get("oneOf") or []
        return " | ".join(_type_of(option) for option in options)
    if "enum" in spec:
        return "one of " + ", ".join(str(value) for value in spec["enum"])
    if "const" in spec:
        return repr(spec["const"])
    kind = str(spec.get("type", "any"))
    if kind == "array":
        return f"array of {_type_of(spec.get('items') or {})}"
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return f"map of {_type_of(spec['additionalProperties'])}"
    return f"{kind} ({spec['format']})" if "format" in spec else kind


def asyncapi_html(document: dict[str, Any]) -> str:
    """The page for an AsyncAPI 3 document as FastStream writes it."""
    channels = document.get("channels") or {}
    messages = (document.get("components") or {}).get("messages") or {}
    operations = []
    for operation in (document.get("operations") or {}).values():
        channel = channels.get(_ref_name(operation["channel"]["$ref"]), {})
        schemas = []
        for message in channel.get("messages", {}).values():
            payload = messages.get(_ref_name(message.get("$ref", "")), {}).get("payload", {})
            if "$ref" in payload:
                schemas.append(_ref_name(payload["$ref"]))
        operations.append(
            {
                "action": operation.get("action"),
                "address": channel.get("address", ""),
                "description": channel.get("description", ""),
                "schemas": schemas,
            }
        )
    operations.sort(key=lambda op: (op["action"] != "receive", op["address"]))
    components: dict[str, Any] = (document.get("components") or {}).get("schemas") or {}
    payloads = sorted(components.items())
    return _PAGE.render(
        info=document.get("info") or {},
        version=document.get("asyncapi", ""),
        operations=operations,
        schemas=payloads,
        type_of=_type_of,
    )
