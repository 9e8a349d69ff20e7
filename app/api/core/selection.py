"""What a query selects below a field: for fields whose cost depends on what is asked (costReport reads every
call of its range only when a percentile is selected)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from .context import Info


def _selects(selections: Iterable[Any], path: Sequence[str]) -> bool:
    for s in selections:
        if isinstance(s, (FragmentSpread, InlineFragment)):
            if _selects(s.selections, path):
                return True
        elif (isinstance(s, SelectedField) and s.name == path[0]
              and (len(path) == 1 or _selects(s.selections, path[1:]))):
            return True
    return False


def selects(info: Info, *path: str) -> bool:
    """Whether the current field's selection reaches ``path`` (GraphQL names, e.g. "buckets", "p95LatencyMs"),
    through fragments and aliases."""
    return any(_selects(f.selections, path) for f in info.selected_fields)
