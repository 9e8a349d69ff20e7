"""Per-request loaders of the validations domain."""
from __future__ import annotations

from app.db import models

from ..core.loaders import ManyByKeyLoader


class ValidationsByPrompt(ManyByKeyLoader):
    """All validations (active and not) of each prompt, oldest first: one statement per request shape."""

    model = models.Validation
    key_column = "prompt_id"
    order_by = (models.Validation.created_at, models.Validation.id)
