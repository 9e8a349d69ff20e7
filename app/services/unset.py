"""``UNSET``: "this field was left out of the change, keep it as it is" — distinct from None, which
clears a nullable field. Update service functions take it as the default of every changeable field."""
from __future__ import annotations

from typing import Any


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()
