"""Where each domain's root classes and extra types are registered with the schema.

Each module under app/api/types exposes QUERIES, MUTATIONS (and SUBSCRIPTIONS) lists of
root classes; they are merged in the order below.
"""
from __future__ import annotations

import importlib

DOMAINS = [
    "app.api.types.identity",
    "app.api.types.projects",
    "app.api.types.prompts",
    "app.api.types.deployments",
    "app.api.types.validations",
    "app.api.types.executions",
    "app.api.types.models",
    "app.api.subscriptions",
]


def _modules():
    out = []
    for name in DOMAINS:
        try:
            out.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module
                raise
    return out


def register_all(queries: list, mutations: list, subscriptions: list) -> None:
    for module in _modules():
        queries.extend(getattr(module, "QUERIES", []))
        mutations.extend(getattr(module, "MUTATIONS", []))
        subscriptions.extend(getattr(module, "SUBSCRIPTIONS", []))


def extra_types() -> list:
    """Types reachable only through the Node interface must still be listed for the schema."""
    types: list = []
    for module in _modules():
        types.extend(getattr(module, "EXTRA_TYPES", []))
    return types
