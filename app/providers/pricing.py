"""Model pricing: the table shipped in ``app/data/pricing.json``, and finding a model in it.

The file is read through ``importlib.resources`` so it works from a source checkout and after
``pip install .`` alike. Prices are decimal strings in US dollars per million tokens. The table is
seeded into ``model_configs`` (``app.services.models``), which is where costs are computed.
"""
from __future__ import annotations

import copy
import json
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources

REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "provider": str,
    "modelId": str,
    "displayName": str,
    "contextLength": int,
    "maxOutputTokens": int,
    "supportsStreaming": bool,
    "supportsTools": bool,
    "inputPricePerMillion": str,
    "outputPricePerMillion": str,
    "cachedInputPricePerMillion": (str, type(None)),
}
PRICE_FIELDS = ("inputPricePerMillion", "outputPricePerMillion", "cachedInputPricePerMillion")
# A dated snapshot suffix: gpt-4o-2024-08-06, claude-sonnet-4-20250514, o3-2025-04-16.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


class PricingError(ValueError):
    """pricing.json is missing or does not have the expected shape."""


@lru_cache(maxsize=1)
def _document() -> dict:
    try:
        text = resources.files("app").joinpath("data").joinpath("pricing.json").read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise PricingError(f"app/data/pricing.json not found: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise PricingError(f"app/data/pricing.json is not valid JSON: {exc}") from exc
    _validate(document)
    return document


def _validate(document: object) -> None:
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise PricingError("pricing.json must be an object with a 'models' list")
    for key in ("takenAt", "source"):
        if not isinstance(document.get(key), str):
            raise PricingError(f"pricing.json needs a top-level {key!r} string")
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(document["models"]):
        where = f"pricing.json models[{index}]"
        if not isinstance(entry, dict):
            raise PricingError(f"{where} is not an object")
        for field, kind in REQUIRED_FIELDS.items():
            if field not in entry or not isinstance(entry[field], kind):
                raise PricingError(f"{where} ({entry.get('modelId')}): {field!r} is missing or of the wrong type")
        for field in PRICE_FIELDS:
            if entry[field] is None:
                continue
            try:
                price = Decimal(entry[field])
            except InvalidOperation:
                raise PricingError(f"{where}: {field}={entry[field]!r} is not a decimal number") from None
            if not price.is_finite() or price < 0:
                raise PricingError(f"{where}: {field}={entry[field]!r} must be 0 or more")
        name = (entry["provider"], entry["modelId"])
        if name in seen:
            raise PricingError(f"{where}: {name} appears twice")
        seen.add(name)


def pricing_document() -> dict:
    """The whole file: ``takenAt``, ``source``, ``currency``, ``unit`` and ``models`` (a copy)."""
    return copy.deepcopy(_document())


def load_pricing() -> list[dict]:
    """Every model's entry (a fresh copy each call; callers may modify it)."""
    return copy.deepcopy(_document()["models"])


def _names(entry: dict) -> set[str]:
    return {entry["modelId"].lower(), *(alias.lower() for alias in entry.get("aliases", []))}


def find_model_pricing(model: str, provider: str | None = None) -> dict | None:
    """The pricing entry for ``model``, or None when the table does not know it.

    Matches the model id or an alias, case-insensitively; then without a router prefix
    (``openai/gpt-4o`` on OpenRouter); then without a dated snapshot suffix
    (``gpt-4o-2024-08-06`` -> ``gpt-4o``). An entry of ``provider`` wins over an entry of
    another vendor with the same name (OpenAI-compatible gateways serve other vendors' models,
    so those are found too).
    """
    entries = _document()["models"]
    candidates = [model.strip().lower()]
    if "/" in candidates[0]:
        candidates.append(candidates[0].rsplit("/", 1)[1])
    for name in list(candidates):
        stripped = _SNAPSHOT.sub("", name)
        if stripped != name:
            candidates.append(stripped)
    for name in candidates:
        matches = [entry for entry in entries if name in _names(entry)]
        if matches:
            preferred = [entry for entry in matches if entry["provider"] == provider]
            return copy.deepcopy((preferred or matches)[0])
    return None
