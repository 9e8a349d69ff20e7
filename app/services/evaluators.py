"""Evaluators: reusable ways to score an output (``app.rules.evaluators`` says what each type does).

``create_evaluator`` (WRITE_EXPERIMENTS) checks the config before anything is stored — in the
sandbox, since patterns, schemas and expressions are written by users — and reports every problem at
``["input", "config", ...]``; an LLM_JUDGE must name a provider the server knows. Names are unique per
project (CONFLICT): an evaluator's name is the name of the scores it gives. ``feedback`` is taken by
the ratings of live A/B tests.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import sandbox
from app.db.models import Evaluator
from app.providers.registry import provider_names
from app.rules.evaluators import EVALUATOR_TYPES, LLM_JUDGE

from .access import Action, require
from .datasets import check_description, check_name
from .errors import ServiceError, conflict, invalid, many
from .tx import Tx, service

MAX_NAME_LENGTH = 100
#: The score of feedback ratings (live A/B tests); no evaluator may take its name.
FEEDBACK_SCORE = "feedback"


async def check_evaluator_config(settings: Any, type_: str, config: Any, field: list[str]) -> None:
    """Raise INVALID (every problem) unless ``config`` suits an evaluator of ``type_``."""
    problems = await sandbox.check_evaluator(settings, type_, config)
    errors: list[ServiceError] = [invalid(p.message, [*field, *p.field]) for p in problems]
    if type_ == LLM_JUDGE and isinstance(config, dict) and isinstance(config.get("provider"), str):
        provider = config["provider"].strip()
        if provider and provider not in provider_names():
            errors.append(invalid(f"Unknown provider {provider!r}; the providers are: {', '.join(provider_names())}.",
                                  [*field, "provider"]))
    if errors:
        raise many(errors)


@service("evaluator.create")
async def create_evaluator(tx: Tx, *, project_id: uuid.UUID | None, name: str, description: str | None, type: str,
                           config: Any) -> Evaluator:
    """A new evaluator of the project (see the module docstring)."""
    session, note = tx.session, tx.note
    note.about(Evaluator)
    project = await require(session, tx.principal, project_id, Action.WRITE_EXPERIMENTS,
                            field=["input", "projectId"], note=note)
    name = check_name(name, ["input", "name"], limit=MAX_NAME_LENGTH)
    note.details = {"name": name, "type": type}
    if name.casefold() == FEEDBACK_SCORE:
        raise invalid(f"{name!r} is the name of the feedback ratings' score; choose another name.", ["input", "name"])
    if type not in EVALUATOR_TYPES:
        raise invalid(f"Unknown evaluator type {type!r}; the types are: {', '.join(EVALUATOR_TYPES)}.",
                      ["input", "type"])
    description = check_description(description, ["input", "description"])
    await check_evaluator_config(tx.settings, type, config, ["input", "config"])
    taken = conflict(f"This project already has an evaluator named {name!r}; choose another name.", ["input", "name"])
    if (await session.execute(select(Evaluator.id).where(Evaluator.project_id == project.id,
                                                         Evaluator.name == name))).first() is not None:
        raise taken
    row = Evaluator(project_id=project.id, name=name, description=description, type=type, config=config,
                    created_by_id=tx.principal.user_id)
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:
        if "uq_evaluators_project_id_name" in str(exc.orig):
            raise taken from None
        raise
    await session.refresh(row)
    note.resource_id = row.id
    return row
