"""Datasets: named lists of items (variables, an expected output, metadata) that offline experiments run on.

- ``create_dataset`` (WRITE_EXPERIMENTS): names are unique per project (CONFLICT).
- ``add_dataset_items`` (WRITE_EXPERIMENTS): up to ``MAX_ITEMS_PER_CALL`` items in one call, all checked
  first (every problem reported, with its item's index; nothing is added when one is wrong) and
  inserted with one statement. Items are numbered 1, 2, ... in the order they are added (their
  ``position``): the order of ``Dataset.items``, and how two variants' runs of one item are paired.
  Concurrent calls on one dataset queue up on its row. A dataset holds at most
  ``PROMPTSTUDIO_DATASET_MAX_ITEMS`` items. Larger files than one call takes go through
  ``promptstudio dataset import``, which sends them in batches.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.db.models import Dataset, DatasetItem

from .access import Action, require
from .errors import ServiceError, conflict, invalid, limit_exceeded, many, not_found
from .tx import Tx, service

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000
#: Items one addDatasetItems call may add (10,000 small items fit in the default 1 MB request body).
MAX_ITEMS_PER_CALL = 10_000
MAX_EXPECTED_OUTPUT_CHARS = 100_000
#: An item's variables and metadata, serialised, at most.
MAX_ITEM_BYTES = 256 * 1024
#: Problems reported per call at most (the rest are counted).
MAX_REPORTED = 20


@dataclass(frozen=True)
class ItemData:
    variables: Any
    expected_output: str | None = None
    metadata: Any = None


def check_name(name: Any, field: list[str], what: str = "name", limit: int = MAX_NAME_LENGTH) -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid(f"The {what} must not be empty.", field)
    name = name.strip()
    if len(name) > limit:
        raise invalid(f"The {what} is {len(name)} characters long; at most {limit} are allowed.", field)
    return name


def check_description(description: Any, field: list[str]) -> str | None:
    if description is None:
        return None
    text = str(description).strip()
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise invalid(f"The description is {len(text)} characters long; at most {MAX_DESCRIPTION_LENGTH} are "
                      "allowed.", field)
    return text or None


@service("dataset.create")
async def create_dataset(tx: Tx, *, project_id: uuid.UUID | None, name: str, description: str | None) -> Dataset:
    """A new, empty dataset in the project."""
    session, note = tx.session, tx.note
    note.about(Dataset)
    project = await require(session, tx.principal, project_id, Action.WRITE_EXPERIMENTS,
                            field=["input", "projectId"], note=note)
    name = check_name(name, ["input", "name"])
    note.details = {"name": name}
    description = check_description(description, ["input", "description"])
    taken = conflict(f"This project already has a dataset named {name!r}; choose another name.", ["input", "name"])
    if (await session.execute(select(Dataset.id).where(Dataset.project_id == project.id, Dataset.name == name))
            ).first() is not None:
        raise taken
    row = Dataset(project_id=project.id, name=name, description=description, created_by_id=tx.principal.user_id)
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError as exc:  # a concurrent create took the name
        if "uq_datasets_project_id_name" in str(exc.orig):
            raise taken from None
        raise
    await session.refresh(row)
    note.resource_id = row.id
    return row


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _check_items(items: Sequence[ItemData]) -> list[ServiceError]:
    errors: list[ServiceError] = []
    for i, item in enumerate(items):
        at = ["input", "items", str(i)]
        if not isinstance(item.variables, dict):
            errors.append(invalid(f"items[{i}].variables must be a JSON object of variable names and values, e.g. "
                                  '{"question": "What is 2 + 2?"}.', [*at, "variables"]))
        if item.expected_output is not None and len(item.expected_output) > MAX_EXPECTED_OUTPUT_CHARS:
            errors.append(invalid(f"items[{i}].expectedOutput is {len(item.expected_output)} characters long; at "
                                  f"most {MAX_EXPECTED_OUTPUT_CHARS} are allowed.", [*at, "expectedOutput"]))
        if item.metadata is not None and not isinstance(item.metadata, dict):
            errors.append(invalid(f"items[{i}].metadata must be a JSON object (or null).", [*at, "metadata"]))
        if isinstance(item.variables, dict):
            size = _json_size(item.variables) + (_json_size(item.metadata) if item.metadata is not None else 0)
            if size > MAX_ITEM_BYTES:
                errors.append(invalid(f"items[{i}] is {size} bytes of variables and metadata; at most "
                                      f"{MAX_ITEM_BYTES} are allowed.", at))
    return errors


_INSERT = """
INSERT INTO dataset_items (id, dataset_id, position, variables, expected_output, metadata)
SELECT u.id, $1, u.position, u.variables::jsonb, u.expected, u.metadata::jsonb
FROM unnest($2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[]) AS u(id, position, variables, expected, metadata)
RETURNING created_at
"""


@service("dataset.add_items")
async def add_dataset_items(tx: Tx, *, dataset_id: uuid.UUID | None, items: Sequence[ItemData]) -> list[DatasetItem]:
    """Append ``items`` to a dataset, in order (see the module docstring)."""
    session, note = tx.session, tx.note
    note.about(Dataset, dataset_id)
    field = ["input", "datasetId"]
    dataset = (await session.execute(select(Dataset).where(Dataset.id == dataset_id))).scalar_one_or_none() \
        if dataset_id is not None else None
    if dataset is None:
        raise not_found("No dataset with this ID.", field)
    await require(session, tx.principal, dataset.project_id, Action.WRITE_EXPERIMENTS, field=field, what="dataset",
                  note=note, conceal_unless=Action.READ_EXPERIMENTS)
    if not items:
        raise invalid("Give at least one item.", ["input", "items"])
    if len(items) > MAX_ITEMS_PER_CALL:
        raise limit_exceeded(f"{len(items):,} items in one call; at most {MAX_ITEMS_PER_CALL:,} are allowed (send "
                             "them in batches, or use `promptstudio dataset import`).", ["input", "items"])
    errors = _check_items(items)
    if errors:
        shown = errors[:MAX_REPORTED]
        if len(errors) > MAX_REPORTED:
            shown.append(invalid(f"... and {len(errors) - MAX_REPORTED} more problems; nothing was added.",
                                 ["input", "items"]))
        raise many(shown)
    # Positions are handed out under the dataset's row lock: concurrent calls queue up here.
    dataset = (await session.execute(select(Dataset).where(Dataset.id == dataset.id).with_for_update()
                                     .execution_options(populate_existing=True))).scalar_one()
    if dataset.item_count + len(items) > tx.settings.dataset_max_items:
        raise limit_exceeded(f"The dataset has {dataset.item_count:,} items; {len(items):,} more would pass the "
                             f"limit of {tx.settings.dataset_max_items:,} (PROMPTSTUDIO_DATASET_MAX_ITEMS).",
                             ["input", "items"])
    first = dataset.item_count + 1
    ids = [uuid.uuid4() for _ in items]
    positions = list(range(first, first + len(items)))
    conn = (await (await session.connection()).get_raw_connection()).driver_connection
    assert conn is not None
    created = await conn.fetch(
        _INSERT, dataset.id, ids, positions,
        [json.dumps(it.variables, ensure_ascii=False) for it in items], [it.expected_output for it in items],
        [json.dumps(it.metadata, ensure_ascii=False) if it.metadata is not None else None for it in items])
    created_at: datetime = created[0]["created_at"]
    dataset.item_count += len(items)
    dataset.updated_at = func.now()
    await session.flush()
    note.project_id = dataset.project_id
    note.details = {"added": len(items), "firstPosition": first, "itemCount": dataset.item_count}
    return [DatasetItem(id=i, dataset_id=dataset.id, position=p, variables=it.variables,
                        expected_output=it.expected_output, metadata_=it.metadata, created_at=created_at)
            for i, p, it in zip(ids, positions, items, strict=True)]
