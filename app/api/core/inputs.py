"""Input fields left out (``strawberry.UNSET``) as the services take them."""
from __future__ import annotations

from typing import Any

import strawberry

from app.services.unset import UNSET


def or_unset(value: Any) -> Any:
    """For changes: a field left out is the services' UNSET ("keep it"); null stays None ("clear it")."""
    return UNSET if value is strawberry.UNSET else value


def or_none(value: Any) -> Any:
    """For creations: a field left out is None."""
    return None if value is strawberry.UNSET else value
