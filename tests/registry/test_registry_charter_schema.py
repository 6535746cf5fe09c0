"""The registry's API takes a project's charter by the events' own field rules (one source)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.registry.entrypoints.api import router
from shared.events.contracts import (
    CharterFields,
    ProjectCharter,
    ProjectLifecycleChanged,
    ProjectRebaselined,
)

# The proposal's own rules: the manager defaults to the caller; two fields say who may set them.
WORDED_FOR_THE_API = {"manager", "key_project", "methodology"}


def _without_description(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "description"}


def _stated(schema: dict[str, Any]) -> dict[str, Any]:
    # FastAPI leaves a None default out of OpenAPI; pydantic's JSON Schema keeps it.
    return {key: value for key, value in schema.items() if (key, value) != ("default", None)}


def _openapi_schemas() -> dict[str, Any]:
    app = FastAPI()
    app.include_router(router)
    schemas: dict[str, Any] = app.openapi()["components"]["schemas"]
    return schemas


def test_the_proposal_documents_each_charter_field_as_the_event_contract_does() -> None:
    proposal = _openapi_schemas()["ProjectProposalIn"]
    charter = ProjectCharter.model_json_schema(ref_template="#/components/schemas/{model}")
    assert list(proposal["properties"]) == ["project_id", *CharterFields.model_fields]
    for name in ["project_id", *CharterFields.model_fields]:
        api, event = _stated(proposal["properties"][name]), _stated(charter["properties"][name])
        if name in WORDED_FOR_THE_API:
            api, event = _without_description(api), _without_description(event)
        if name == "manager":
            event.pop("title")
            assert api["anyOf"] == [event, {"type": "null"}]
        else:
            assert api == event, name
    # e.g. the limits the events enforce are the ones the API states (sponsor, objectives).
    assert proposal["properties"]["objectives"]["maxItems"] == 1000
    assert proposal["properties"]["sponsor"]["anyOf"][0]["maxLength"] == 4000


def test_a_rebaseline_reason_is_bounded_as_the_event_that_carries_it() -> None:
    # It was 2,000 characters in the API and 200 in project-rebaselined, which then refused it.
    api = _openapi_schemas()["BaselineIn"]["properties"]["reason"]
    event = ProjectRebaselined.model_json_schema()["properties"]["reason"]
    assert _without_description(api) == _without_description(event)


def test_a_transition_reason_is_bounded_as_the_lifecycle_event_that_carries_it() -> None:
    # It was 2,000 characters in the API and 4,000 in project-lifecycle-changed.
    api = _openapi_schemas()["TransitionIn"]["properties"]["reason"]
    event = ProjectLifecycleChanged.model_json_schema()["properties"]["reason"]
    assert _stated(_without_description(api)) == _stated(_without_description(event))
