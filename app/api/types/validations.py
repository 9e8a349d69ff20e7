"""Validation types (owner: validations). Placeholder until validations land."""
from __future__ import annotations

import strawberry


@strawberry.type
class PromptValidationFields:
    """Prompt.validations (mixed into Prompt)."""


QUERIES: list = []
MUTATIONS: list = []
