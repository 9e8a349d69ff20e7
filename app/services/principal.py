"""Who is acting: a signed-in user, an API key of one project, or nobody."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "api_key", "anonymous"]
    user_id: uuid.UUID | None = None
    is_superuser: bool = False
    #: For API keys: the key, its project and its scopes.
    api_key_id: uuid.UUID | None = None
    api_key_project_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    #: For user sessions: the session row (logOut revokes it).
    session_id: uuid.UUID | None = None
    #: Request metadata recorded in audit events.
    ip_address: str | None = None
    user_agent: str | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.kind != "anonymous"

    @classmethod
    def anonymous(cls, ip_address: str | None = None, user_agent: str | None = None) -> Principal:
        return cls(kind="anonymous", ip_address=ip_address, user_agent=user_agent)
