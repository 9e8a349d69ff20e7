"""Prompt registry types (owner: registry). Placeholder until the registry lands."""
from __future__ import annotations

import strawberry


@strawberry.type
class ProjectPromptFields:
    """Project.prompts / prompt / tags (mixed into Project)."""


QUERIES: list = []
MUTATIONS: list = []
