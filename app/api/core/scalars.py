"""Our versions of Strawberry's scalars, where Strawberry's accept input the database cannot take.

Given to the schema as ``scalar_overrides`` (``app/api/schema.py``); each keeps its name and
description, so the exported SDL does not change.

* **DateTime** — Strawberry's parser accepts any ISO 8601 date-time from year 1 to 9999, but the
  driver converts it to UTC before sending it (a value without a zone as the server's local time),
  and near those ends that conversion leaves the years Python has: ``0001-01-01T00:00:00+05:30``
  or a zone-less ``0001-01-01T00:00:00.000002`` failed inside a statement as an internal error.
  Such values are refused as input errors.
"""
from __future__ import annotations

import datetime as dt

from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition


def _parse_datetime(value: object) -> dt.datetime:
    parse_iso = DateTimeDefinition.parse_value  # Strawberry's: ISO 8601, or a coercion error
    assert parse_iso is not None
    parsed = parse_iso(value)
    assert isinstance(parsed, dt.datetime)
    try:
        parsed.astimezone(dt.UTC)  # what the driver does (a naive value: as the server's local time)
    except (OverflowError, ValueError):
        raise StrawberryInputCoercionError(
            f'Value cannot represent a DateTime: "{value}". It is out of range: in UTC it must fall '
            "between 0001-01-01 and 9999-12-31.") from None
    return parsed


DateTime = ScalarDefinition(
    name=DateTimeDefinition.name,
    description=DateTimeDefinition.description,
    specified_by_url=DateTimeDefinition.specified_by_url,
    serialize=DateTimeDefinition.serialize,
    parse_value=_parse_datetime,
    parse_literal=None,
    origin=dt.datetime,
)

#: For ``strawberry.Schema(scalar_overrides=...)``.
SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {dt.datetime: DateTime}
