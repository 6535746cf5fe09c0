"""The naming convention holds: tables end in Row, API request bodies in In, responses in Out."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest
from pydantic import BaseModel
from sqlmodel import SQLModel

import services
from shared.http_input import RequestBody

pytestmark = pytest.mark.fast


def _modules(layer: str) -> list[ModuleType]:
    found = []
    for info in pkgutil.walk_packages(services.__path__, "services."):
        if f".{layer}." in info.name and ".migrations" not in info.name:
            found.append(importlib.import_module(info.name))
    return found


def _defined_here(module: ModuleType) -> list[type]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__ == module.__name__
    ]


def test_every_table_model_ends_in_row() -> None:
    tables = [
        cls
        for module in _modules("adapters")
        for cls in _defined_here(module)
        if issubclass(cls, SQLModel) and hasattr(cls, "__table__")
    ]
    assert len(tables) > 25  # the four services' tables were found
    assert [cls.__name__ for cls in tables if not cls.__name__.endswith("Row")] == []


def test_every_api_model_ends_in_in_or_out() -> None:
    models = [
        cls
        for module in _modules("entrypoints")
        for cls in _defined_here(module)
        if issubclass(cls, BaseModel) and not cls.__name__.startswith("_")
    ]
    assert len(models) > 60
    assert [cls.__name__ for cls in models if not cls.__name__.endswith(("In", "Out"))] == []
    # A body the API validates strictly is a request's, whatever else it is.
    bodies = [cls.__name__ for cls in models if issubclass(cls, RequestBody)]
    assert [name for name in bodies if not name.endswith("In")] == []


def test_every_schema_an_api_documents_is_an_in_an_out_or_an_event_contracts() -> None:
    # The contracts' own models (and the thresholds, shared with the settings) keep their names.
    from fastapi import FastAPI

    import shared.events.contracts as contracts
    from services.catalog import SERVICES

    shared_names = {name for name, value in vars(contracts).items() if inspect.isclass(value)}
    allowed = shared_names | {"HTTPValidationError", "ValidationError", "HealthThresholds"}
    for name, definition in SERVICES.items():
        app = FastAPI()
        for router in definition.routers:
            app.include_router(router)
        components = app.openapi().get("components", {}).get("schemas", {})
        assert len(components) > 5, name
        wrong = [c for c in components if not c.endswith(("In", "Out")) and c not in allowed]
        assert wrong == [], name
